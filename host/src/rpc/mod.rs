//! ONC RPC (RFC 5531) as nfsgw speaks it over TCP and UDP, for every program it serves (NFS,
//! MOUNT, the portmapper): XDR reading with bounds (`xdr`), record marking and the budget of
//! bytes that records in flight may hold (`record`), call headers and their credentials
//! (`call`), and reply headers (`reply`). It knows no program: what a call means is the
//! caller's business, and the only program knowledge a record reader takes is a hint of where
//! a call's bulk data starts, so that it can land block-aligned.

pub mod call;
pub mod record;
pub mod reply;
pub mod xdr;

pub use call::{parse_call, Auth, Call, Incoming};
pub use record::{read_record, read_record_limited, DataAt, Record, RecordBudget, MAX_RECORD};
pub use reply::{accepted, seal, success};
pub use xdr::{args, Reader};
