//! The native object-store client: one mount's S3 bucket as the host reaches it (`store`,
//! and `upload` for staged files, with the keys it accepts in `keys`), with the credentials it signs with (`credentials`), the requests `object_store` cannot make
//! (`markers`: directory markers and listings), uploads streamed while a file is still being
//! written (`stream`), the record of multipart uploads not yet finished (`upload_log`), and, for
//! tests, faults injected into its requests (`faults`). The
//! gateway core uses it directly (read-ahead, write-back) and the plugin runtime offers it to
//! plugins as the `blobstore` capability; it knows neither, and answers with the plugin
//! interface's errors (`crate::wit_types`).

mod credentials;
mod faults;
mod keys;
mod markers;
mod store;
mod stream;
mod upload;
mod upload_log;

pub use credentials::Credentials;
pub use store::{BlobStore, Meta};
pub use stream::{Stream, STREAM_PART};
pub use upload_log::UploadLog;
