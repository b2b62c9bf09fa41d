//! Reading one DAG file safely: whatever sits at a DAG file's name (a link out of
//! the folder, a FIFO, a device, a file growing while it is read) is either read
//! as a small regular file of its own tenant or refused with a reason.
//!
//! Every path reads through [`read_dag_file`]: the start-up scan, a file-watch
//! re-parse and the cheap `id` look-up alike, so no path is laxer than another.

use super::{DagFolder, MAX_DAG_FILE_BYTES, is_tenant_name};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path};

/// Why a DAG file was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// Nothing is at that name (any more): not an import error, the file is gone.
    #[error("the file does not exist")]
    Gone,
    /// Something is there that is not read; the message says what and why.
    #[error("{0}")]
    Refused(String),
    #[error("cannot read the file: {0}")]
    Io(#[source] io::Error),
}

/// One message for a link that dangles and one that leads out of its tenant's
/// part of the folder: telling them apart would let a tenant probe which paths
/// exist elsewhere on the host, or in another tenant's folder.
const LINK_OUT: &str = "the file is a symbolic link whose target is missing or outside this \
                        tenant's part of the DAGs folder; links must stay inside it";

/// Reads `fileloc` of `folder` as UTF-8 text.
///
/// - The path is resolved (every symbolic link, in the folder's own path too) and
///   must lie inside the DAGs folder, in the fileloc's own tenant: a top-level file
///   anywhere but a tenant folder, a tenant's file inside that tenant's folder.
/// - It is opened without following a last link (it was resolved already) and
///   without blocking, so a FIFO cannot stall the DAG processor, then checked
///   through the open handle: only a regular file is read.
/// - At most [`MAX_DAG_FILE_BYTES`] are read, counted as they arrive, so a file
///   that grows after the size check (or lies about its size) cannot take memory.
pub(crate) fn read_dag_file(folder: &DagFolder, fileloc: &str) -> Result<String, ReadError> {
    let path = folder.path_of(fileloc).ok_or(ReadError::Gone)?;
    let resolved = match std::fs::canonicalize(&path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A name that still exists as a link points nowhere; otherwise the
            // file went away.
            return if std::fs::symlink_metadata(&path).is_ok() {
                Err(ReadError::Refused(LINK_OUT.to_owned()))
            } else {
                Err(ReadError::Gone)
            };
        }
        Err(e) => return Err(ReadError::Io(e)),
    };
    let root = std::fs::canonicalize(folder.root()).map_err(ReadError::Io)?;
    let inside = resolved
        .strip_prefix(&root)
        .is_ok_and(|rel| owner(rel) == DagFolder::tenant_of(fileloc));
    if !inside {
        return Err(ReadError::Refused(LINK_OUT.to_owned()));
    }
    let file = open_no_wait(&resolved)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a folder"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(ReadError::Refused(format!(
            "the file is {what}; only regular files are read as DAG files"
        )));
    }
    if meta.len() > MAX_DAG_FILE_BYTES {
        return Err(too_large(&format!("{} bytes", meta.len())));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_DAG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_DAG_FILE_BYTES {
        return Err(too_large(&format!("over {MAX_DAG_FILE_BYTES} bytes")));
    }
    String::from_utf8(bytes)
        .map_err(|_| ReadError::Refused("the file is not valid UTF-8".to_owned()))
}

fn too_large(size: &str) -> ReadError {
    ReadError::Refused(format!(
        "the file is {size}; DAG files may be at most {MAX_DAG_FILE_BYTES} bytes"
    ))
}

/// The tenant whose part of the folder `rel` (relative to the resolved folder)
/// lies in: a tenant folder's name for anything below one, else the default
/// tenant (top-level files, hidden or otherwise ignored folders).
fn owner(rel: &Path) -> &str {
    let mut parts = rel.components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(first)), Some(_)) => match first.to_str() {
            Some(name) if is_tenant_name(name) => name,
            _ => super::DEFAULT_TENANT,
        },
        _ => super::DEFAULT_TENANT,
    }
}

/// Opens `path` for reading without following a final symbolic link and without
/// waiting: opening a FIFO that has no writer would otherwise block until one
/// comes. The flag does not change how a regular file reads.
fn open_no_wait(path: &Path) -> Result<File, ReadError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ReadError::Gone,
            // ELOOP: the resolved name became a link since it was resolved.
            _ if e.raw_os_error() == Some(libc::ELOOP) => ReadError::Refused(LINK_OUT.to_owned()),
            _ => ReadError::Io(e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn refusal(folder: &DagFolder, fileloc: &str) -> String {
        match read_dag_file(folder, fileloc) {
            Err(ReadError::Refused(m)) => m,
            other => panic!("{fileloc}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn links_inside_the_tenant_are_followed_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("dags");
        let outside = dir.path().join("secret.toml");
        std::fs::write(&outside, "token = 1\n").unwrap();
        for d in ["acme/..data", "beta", ".shared"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("acme/..data/etl.toml"), "id = \"etl\"\n").unwrap();
        std::fs::write(root.join("beta/x.toml"), "id = \"x\"\n").unwrap();
        std::fs::write(root.join(".shared/top.toml"), "id = \"top\"\n").unwrap();
        std::fs::write(root.join("plain.toml"), "id = \"plain\"\n").unwrap();
        // A ConfigMap-style link within the tenant's folder is read.
        symlink("..data/etl.toml", root.join("acme/etl.toml")).unwrap();
        // Top-level links into an ignored folder, and to a top-level file.
        symlink(".shared/top.toml", root.join("top.toml")).unwrap();
        symlink("plain.toml", root.join("again.toml")).unwrap();
        // Out of the folder, into another tenant, to the default tenant, dangling,
        // and to the process's own environment.
        symlink(&outside, root.join("acme/out.toml")).unwrap();
        symlink("../beta/x.toml", root.join("acme/steal.toml")).unwrap();
        symlink("../plain.toml", root.join("acme/up.toml")).unwrap();
        symlink("beta/x.toml", root.join("down.toml")).unwrap();
        symlink("nowhere.toml", root.join("acme/dangling.toml")).unwrap();
        symlink("/proc/self/environ", root.join("env.toml")).unwrap();

        let folder = DagFolder::new(&root);
        for (fileloc, text) in [
            ("acme/etl.toml", "id = \"etl\"\n"),
            ("top.toml", "id = \"top\"\n"),
            ("again.toml", "id = \"plain\"\n"),
            ("plain.toml", "id = \"plain\"\n"),
        ] {
            assert_eq!(read_dag_file(&folder, fileloc).unwrap(), text, "{fileloc}");
        }
        for fileloc in [
            "acme/out.toml",
            "acme/steal.toml",
            "acme/up.toml",
            "down.toml",
            "acme/dangling.toml",
            "env.toml",
        ] {
            assert_eq!(refusal(&folder, fileloc), LINK_OUT, "{fileloc}");
        }
        assert!(matches!(
            read_dag_file(&folder, "acme/missing.toml"),
            Err(ReadError::Gone)
        ));
    }

    #[test]
    fn a_folder_whose_own_path_is_a_link_reads_as_usual() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("rev-1");
        std::fs::create_dir_all(real.join("acme")).unwrap();
        std::fs::write(real.join("acme/a.toml"), "id = \"a\"\n").unwrap();
        // git-sync swaps a link to the checked-out revision.
        symlink(&real, dir.path().join("dags")).unwrap();
        let folder = DagFolder::new(&dir.path().join("dags"));
        assert_eq!(
            read_dag_file(&folder, "acme/a.toml").unwrap(),
            "id = \"a\"\n"
        );
    }

    #[test]
    fn fifos_devices_and_folders_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let fifo =
            std::ffi::CString::new(root.join("pipe.toml").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        std::fs::create_dir(root.join("dir.toml")).unwrap();
        let folder = DagFolder::new(root);
        assert_eq!(
            refusal(&folder, "pipe.toml"),
            "the file is a FIFO (named pipe); only regular files are read as DAG files"
        );
        assert_eq!(
            refusal(&folder, "dir.toml"),
            "the file is a folder; only regular files are read as DAG files"
        );
    }
}
