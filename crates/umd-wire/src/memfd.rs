//! Sealed memfds: how a handler program and large payloads travel without touching
//! a writable path on disk.
//!
//! A sender creates a memfd (`memfd_create(2)`), fills it, and adds
//! [`REQUIRED_SEALS`](crate::REQUIRED_SEALS) (`fcntl(2)`, `F_ADD_SEALS`): from then on
//! nobody — not even the sender — can change, grow or shrink it. A receiver checks
//! the seals and the size with [`SealedMemfd::from_received`] before it maps the
//! bytes, so what it checks is what it later reads.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{MemfdFlags, SealFlags};

use crate::REQUIRED_SEALS;

/// A memfd carrying [`REQUIRED_SEALS`](crate::REQUIRED_SEALS): immutable contents of
/// a known length.
#[derive(Debug)]
pub struct SealedMemfd {
    fd: OwnedFd,
    len: u64,
}

/// Whether the memfd will be executed (a handler program) or only read (a payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exec {
    /// The memfd holds a program: created with `MFD_EXEC` where the kernel knows it.
    Program,
    /// The memfd holds data: created with `MFD_NOEXEC_SEAL` where the kernel knows it.
    Data,
}

/// Why a received memfd was refused.
#[derive(Debug)]
pub enum MemfdError {
    /// A system call on the fd failed (it may not even be a memfd).
    Io(io::Error),
    /// Seals are missing: the sender could still change the contents.
    Unsealed {
        /// Seals found on the fd.
        found: u32,
    },
    /// The fd's size is not the size the frame announced.
    SizeMismatch {
        /// Size announced in the frame.
        announced: u64,
        /// Size found by `fstat`.
        actual: u64,
    },
}

impl std::fmt::Display for MemfdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemfdError::Io(e) => write!(f, "memfd: {e}"),
            MemfdError::Unsealed { found } => write!(
                f,
                "memfd is not sealed (seals {found:#x}, need {REQUIRED_SEALS:#x}: seal, shrink, grow, write)"
            ),
            MemfdError::SizeMismatch { announced, actual } => {
                write!(f, "memfd holds {actual} bytes but the frame announced {announced}")
            }
        }
    }
}

impl std::error::Error for MemfdError {}

impl From<io::Error> for MemfdError {
    fn from(e: io::Error) -> Self {
        MemfdError::Io(e)
    }
}

impl From<rustix::io::Errno> for MemfdError {
    fn from(e: rustix::io::Errno) -> Self {
        MemfdError::Io(e.into())
    }
}

fn create(name: &CStr, exec: Exec) -> io::Result<OwnedFd> {
    let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    let extra = match exec {
        Exec::Program => MemfdFlags::EXEC,
        Exec::Data => MemfdFlags::NOEXEC_SEAL,
    };
    match rustix::fs::memfd_create(name, base | extra) {
        // Kernels before 6.3 do not know MFD_EXEC / MFD_NOEXEC_SEAL.
        Err(rustix::io::Errno::INVAL) => Ok(rustix::fs::memfd_create(name, base)?),
        r => Ok(r?),
    }
}

fn seal(fd: &OwnedFd) -> io::Result<()> {
    rustix::fs::fcntl_add_seals(
        fd,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
    )?;
    Ok(())
}

impl SealedMemfd {
    /// Copies `bytes` into a new memfd named `name` and seals it.
    pub fn from_bytes(name: &CStr, bytes: &[u8], exec: Exec) -> io::Result<Self> {
        let fd = create(name, exec)?;
        let mut rest = bytes;
        while !rest.is_empty() {
            match rustix::io::write(&fd, rest) {
                Ok(n) => rest = &rest[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        seal(&fd)?;
        Ok(SealedMemfd { fd, len: bytes.len() as u64 })
    }

    /// Creates a memfd of `len` bytes, lets `fill` write it in place through a
    /// shared mapping (no intermediate copy), then seals it.
    pub fn build(name: &CStr, len: usize, fill: impl FnOnce(&mut [u8])) -> io::Result<Self> {
        let fd = create(name, Exec::Data)?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        if len > 0 {
            let mut map = Mapping::new(fd.as_fd(), len, true)?;
            fill(map.as_mut_slice());
            // The writable mapping must be gone before F_SEAL_WRITE is accepted.
            drop(map);
        }
        seal(&fd)?;
        Ok(SealedMemfd { fd, len: len as u64 })
    }

    /// Accepts an fd received from a peer only if it carries every required seal
    /// and holds exactly `announced` bytes.
    pub fn from_received(fd: OwnedFd, announced: u64) -> Result<Self, MemfdError> {
        let seals = rustix::fs::fcntl_get_seals(&fd)?;
        let required = SealFlags::from_bits_retain(REQUIRED_SEALS);
        if !seals.contains(required) {
            return Err(MemfdError::Unsealed { found: seals.bits() });
        }
        let actual = rustix::fs::fstat(&fd)?.st_size as u64;
        if actual != announced {
            return Err(MemfdError::SizeMismatch { announced, actual });
        }
        Ok(SealedMemfd { fd, len: actual })
    }

    /// Length of the contents in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the memfd is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maps the contents read-only.
    pub fn map(&self) -> io::Result<Mapping> {
        let len = usize::try_from(self.len).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Mapping::new(self.fd.as_fd(), len, false)
    }

    /// Reads the whole contents into a vector.
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        Ok(self.map()?.as_slice().to_vec())
    }
}

impl AsFd for SealedMemfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<SealedMemfd> for OwnedFd {
    fn from(m: SealedMemfd) -> OwnedFd {
        m.fd
    }
}

/// A shared mapping of a memfd, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: Option<NonNull<u8>>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; nothing else refers to it.
unsafe impl Send for Mapping {}
// SAFETY: shared access only hands out `&[u8]`.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<Mapping> {
        if len == 0 {
            return Ok(Mapping { ptr: None, len: 0 });
        }
        let prot = if writable {
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE
        } else {
            rustix::mm::ProtFlags::READ
        };
        // SAFETY: a fresh mapping at an address the kernel chooses; it aliases no
        // Rust object. For received memfds the seals (checked before) guarantee the
        // file cannot shrink, so reads never fault.
        let ptr = unsafe {
            rustix::mm::mmap(std::ptr::null_mut(), len, prot, rustix::mm::MapFlags::SHARED, fd, 0)?
        };
        Ok(Mapping { ptr: NonNull::new(ptr.cast()), len })
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self.ptr {
            // SAFETY: `ptr` points at `len` mapped, readable bytes that live until drop.
            Some(p) => unsafe { std::slice::from_raw_parts(p.as_ptr(), self.len) },
            None => &[],
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        match self.ptr {
            // SAFETY: only called on writable mappings created by `build`, which has
            // the only reference.
            Some(p) => unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), self.len) },
            None => &mut [],
        }
    }
}

impl std::ops::Deref for Mapping {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if let Some(p) = self.ptr {
            // SAFETY: unmapping exactly what `new` mapped; no slice outlives `self`.
            let _ = unsafe { rustix::mm::munmap(p.as_ptr().cast(), self.len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_memfd_cannot_be_written_and_round_trips() {
        let m = SealedMemfd::from_bytes(c"t", b"hello", Exec::Data).unwrap();
        assert_eq!(m.to_vec().unwrap(), b"hello");
        assert!(rustix::io::write(&m, b"x").is_err());
        let fd: OwnedFd = m.into();
        let again = SealedMemfd::from_received(fd, 5).unwrap();
        assert_eq!(&*again.map().unwrap(), b"hello");
    }

    #[test]
    fn built_memfd_holds_what_fill_wrote() {
        let m = SealedMemfd::build(c"b", 3 << 20, |b| b.fill(7)).unwrap();
        let map = m.map().unwrap();
        assert_eq!(map.len(), 3 << 20);
        assert!(map.iter().all(|&b| b == 7));
    }

    #[test]
    fn unsealed_or_wrong_size_memfd_is_refused() {
        let fd = rustix::fs::memfd_create(c"u", MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::io::write(&fd, b"abc").unwrap();
        assert!(matches!(SealedMemfd::from_received(fd, 3), Err(MemfdError::Unsealed { .. })));
        let m = SealedMemfd::from_bytes(c"s", b"abc", Exec::Data).unwrap();
        assert!(matches!(
            SealedMemfd::from_received(m.into(), 4),
            Err(MemfdError::SizeMismatch { announced: 4, actual: 3 })
        ));
    }
}
