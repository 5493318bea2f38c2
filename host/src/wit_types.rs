//! The plugin interface's shared types (the `types` interface of `wit/backend.wit`), generated
//! by wasmtime on their own, so that the layers below the plugin runtime (the object-store
//! client) speak the same `error` and `timestamp` as the plugins and the gateway core.
//! `plugin::bindings` reuses these very types for the whole interface, so there is one error
//! enum, mapped once to NFS status.

/// The world imports `types`, and one function that is never linked nor called: it returns
/// `error` as a result's error, which is what makes bindgen give `Error` the same `name`,
/// `message`, `Display` and `std::error::Error` as the plugin world gives it.
mod generated {
    wasmtime::component::bindgen!({
        inline: "
            package nfsgw:host-types;
            world types-only {
                use nfsgw:backend/types@0.4.0.{error};
                import error-as-result: func() -> result<_, error>;
            }
        ",
        path: "../wit",
    });
}

pub use generated::nfsgw::backend::types::*;

impl SetAttrs {
    /// No change at all; fill in the fields to change.
    pub fn none() -> SetAttrs {
        SetAttrs {
            mode: None,
            uid: None,
            gid: None,
            size: None,
            atime: None,
            mtime: None,
        }
    }

    /// True when nothing is to change.
    pub fn is_empty(&self) -> bool {
        self.mode.is_none()
            && self.uid.is_none()
            && self.gid.is_none()
            && self.size.is_none()
            && self.atime.is_none()
            && self.mtime.is_none()
    }
}

impl Attrs {
    /// True if both describe one state of a file: the same kind, size, mode, link count,
    /// modification and change times and change token (access times and owners aside). What
    /// a change answers for a directory must be this much the same as a stat of it after.
    pub fn same_state(&self, other: &Attrs) -> bool {
        let state = |a: &Attrs| {
            let times = [a.mtime, a.ctime].map(|t| (t.seconds, t.nanoseconds));
            (a.kind, a.size, a.mode, a.nlink, times, a.change.clone())
        };
        state(self) == state(other)
    }
}

#[cfg(test)]
impl Attrs {
    /// Attributes for unit tests: times at the epoch, one link, no device.
    pub fn for_test(kind: FileKind, mode: u32, uid: u32, gid: u32) -> Attrs {
        let t = Timestamp {
            seconds: 0,
            nanoseconds: 0,
        };
        Attrs {
            kind,
            size: 0,
            mode,
            uid,
            gid,
            nlink: 1,
            atime: t,
            mtime: t,
            ctime: t,
            rdev: Device { major: 0, minor: 0 },
            change: None,
        }
    }
}
