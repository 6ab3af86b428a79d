//! Hashing the file behind an event fd: `pread(2)` in fixed-size chunks, at most
//! `max_size` bytes, one pass feeding every algorithm the list carries.
//!
//! The fd is the kernel's read-only open of the very file being executed (not a
//! path lookup, which could be raced). `pread` leaves the fd's offset alone.
//!
//! Trust: the bytes are hostile — any program a user can put on a marked mount
//! — and they are only hashed, never parsed. Nothing is read past the size
//! `fstat` gave, nor from a file over the caller's bound; a file that grows or
//! shrinks while it is read is reported as changed, not hashed.

use std::os::fd::BorrowedFd;

use umd_digest_list::{Digest, HashAlgo};

/// Chunk size of each `pread`.
pub const CHUNK: usize = 256 * 1024;

/// Identity and version of a file, from `fstat`: what a write changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Change time (seconds, nanoseconds): every write, truncate, chmod or
    /// writable-mmap store moves it, and no user can set it back.
    pub ctime: (i64, i64),
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, i64),
    /// Whether it is a regular file.
    pub regular: bool,
    /// Owned by root with no group or other write bit (with ACLs the group bits
    /// are the mask, so no ACL entry grants write either): only root can
    /// open it for writing.
    pub root_only_writable: bool,
}

impl FileStamp {
    /// `fstat(2)` of `fd`.
    pub fn of(fd: BorrowedFd<'_>) -> std::io::Result<FileStamp> {
        Ok(FileStamp::from_stat(&rustix::fs::fstat(fd)?))
    }

    /// `stat(2)` of `path` (following symbolic links).
    pub(crate) fn of_path(path: &std::path::Path) -> std::io::Result<FileStamp> {
        Ok(FileStamp::from_stat(&rustix::fs::stat(path)?))
    }

    fn from_stat(st: &rustix::fs::Stat) -> FileStamp {
        FileStamp {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            regular: rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile,
            root_only_writable: st.st_uid == 0 && st.st_mode & 0o022 == 0,
        }
    }
}

/// Why a file could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Larger than the bound: not read at all.
    #[error("file of {size} bytes is over the {max}-byte bound")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// A read failed.
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    /// The file grew or shrank while being read.
    #[error("the file changed size while being read")]
    Changed,
}

/// Hashes `size` bytes of `fd` with each algorithm of `algos` into
/// `buf`-sized chunks. Returns the digests in the order of `algos`.
pub fn hash_fd(
    fd: BorrowedFd<'_>,
    size: u64,
    max_size: u64,
    algos: &[HashAlgo],
    buf: &mut [u8],
) -> Result<Vec<Digest>, HashError> {
    if size > max_size {
        return Err(HashError::TooLarge { size, max: max_size });
    }
    let mut states: Vec<umd_hash::Hasher> = algos.iter().map(|a| a.hasher()).collect();
    let mut off = 0u64;
    while off < size {
        let want = usize::try_from(size - off).unwrap_or(usize::MAX).min(buf.len());
        let n = match rustix::io::pread(fd, &mut buf[..want], off) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(HashError::Io(e.into())),
        };
        if n == 0 {
            return Err(HashError::Changed); // shrank under us
        }
        for s in &mut states {
            s.update(&buf[..n]);
        }
        off += n as u64;
    }
    // Grown under us? One byte more must not be there.
    let mut probe = [0u8; 1];
    match rustix::io::pread(fd, &mut probe, size) {
        Ok(0) => {}
        Ok(_) => return Err(HashError::Changed),
        Err(e) => return Err(HashError::Io(e.into())),
    }
    Ok(states.into_iter().map(umd_hash::Hasher::digest).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn hash_matches_the_list_crate_and_respects_the_bound() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let mut buf = vec![0u8; CHUNK];
        let st = FileStamp::of(f.as_fd()).unwrap();
        let got =
            hash_fd(f.as_fd(), st.size, 1 << 30, &[HashAlgo::Sha256, HashAlgo::Sha512], &mut buf).unwrap();
        assert_eq!(got, [Digest::of(HashAlgo::Sha256, &data), Digest::of(HashAlgo::Sha512, &data)]);
        assert!(matches!(
            hash_fd(f.as_fd(), st.size, 100, &[HashAlgo::Sha256], &mut buf),
            Err(HashError::TooLarge { .. })
        ));
        // A stale size (the file grew) is caught.
        assert!(matches!(
            hash_fd(f.as_fd(), st.size - 1, 1 << 30, &[HashAlgo::Sha256], &mut buf),
            Err(HashError::Changed)
        ));
    }
}
