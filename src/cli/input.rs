//! The files `validate` is given on its command line, read safely: it runs
//! in CI on pull requests, so a path may be a FIFO (the read would hang), a
//! device (`/dev/zero` never ends), a huge file, or a symbolic link out of
//! the repository. Each is refused before the file is opened.

use std::io::Read;
use std::path::Path;

/// Why an input file is not read.
#[derive(Debug, thiserror::Error)]
pub(super) enum InputError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a regular file ({kind}); give the catalog file itself (a FIFO or device would block or never end)"
    )]
    NotAFile { path: String, kind: &'static str },
    #[error(
        "{path} is a symbolic link to {target}, outside the repository ({root}) and the working directory; give a file inside them"
    )]
    LinkOutside {
        path: String,
        target: String,
        root: String,
    },
    #[error(
        "{path} is larger than the {limit}-byte limit (catalog.processing.maxFileSize); it is not read"
    )]
    TooLarge { path: String, limit: usize },
}

/// `source` as an [`InputError`] naming `path`.
fn io(path: &str) -> impl Fn(std::io::Error) -> InputError + '_ {
    move |source| InputError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the catalog file `path`, at most `limit` bytes: a regular file
/// (checked before opening, and again on the opened file), not a link
/// leading out of both its repository and the working directory.
pub(super) fn read_file(path: &Path, limit: usize) -> Result<Vec<u8>, InputError> {
    let name = path.to_string_lossy().into_owned();
    check_link(path, &name)?;
    let metadata = std::fs::metadata(path).map_err(io(&name))?;
    check_kind(&metadata, &name, limit)?;
    let file = open(path).map_err(io(&name))?;
    // The path may have changed between the check and the open.
    check_kind(&file.metadata().map_err(io(&name))?, &name, limit)?;
    read_capped(file, &name, limit)
}

/// Reads the standard input (`name` in messages), at most `limit` bytes.
pub(super) fn read_stdin(name: &str, limit: usize) -> Result<Vec<u8>, InputError> {
    read_capped(std::io::stdin().lock(), name, limit)
}

/// Refuses a path through a symbolic link that leads out of both the
/// repository holding it and the working directory.
fn check_link(path: &Path, name: &str) -> Result<(), InputError> {
    let cwd = std::env::current_dir().map_err(io(name))?;
    let absolute = cwd.join(path);
    let linked = absolute.ancestors().any(|a| {
        a.symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
    });
    if !linked {
        return Ok(());
    }
    // A dangling link: the open names the missing file.
    let Ok(real) = absolute.canonicalize() else {
        return Ok(());
    };
    let cwd = cwd.canonicalize().map_err(io(name))?;
    let root = crate::catalog::disk::repository_root(path);
    if real.starts_with(&cwd) || real.starts_with(&root) {
        return Ok(());
    }
    Err(InputError::LinkOutside {
        path: name.to_owned(),
        target: real.display().to_string(),
        root: root.display().to_string(),
    })
}

fn check_kind(metadata: &std::fs::Metadata, name: &str, limit: usize) -> Result<(), InputError> {
    if !metadata.is_file() {
        return Err(InputError::NotAFile {
            path: name.to_owned(),
            kind: kind(metadata),
        });
    }
    if metadata.len() > limit as u64 {
        return Err(InputError::TooLarge {
            path: name.to_owned(),
            limit,
        });
    }
    Ok(())
}

fn kind(metadata: &std::fs::Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    "not a plain file"
}

/// Opens without blocking on a FIFO swapped in after the check.
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// At most `limit` bytes; more is refused, not cut short.
fn read_capped(reader: impl Read, name: &str, limit: usize) -> Result<Vec<u8>, InputError> {
    let mut bytes = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io(name))?;
    if bytes.len() > limit {
        return Err(InputError::TooLarge {
            path: name.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}
