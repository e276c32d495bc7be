//! The data directory: where a node keeps what outlives a run, its
//! identity key first of all.
//!
//! [`DataDir`] creates the directory (mode 0700) and loads or makes the
//! node's ed25519 key in `identity.key`, published atomically so a crash
//! never leaves half a key, and so two processes started on one directory
//! at once agree on one key. [`data_root`] and [`default_data_dir`] say where
//! data dirs live when none is given. [`write_private`] is the one way the
//! node, and a program embedding it, writes a file only its owner may read.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use gossipnet_proto::SecretKey;
use rand::rngs::OsRng;

use super::{StoreError, DATABASE_FILE, IDENTITY_FILE};

/// Bytes of a well-formed key file: 64 hex characters and a newline.
const KEY_FILE_LEN: usize = 65;

/// The default data dir for the node called `name`:
/// `$XDG_DATA_HOME/gossipnet/<name>`, else `$HOME/.local/share/gossipnet/<name>`,
/// else (no home at all) `.gossipnet/<name>` under the current directory.
///
/// `name` is used as one path component; the caller keeps it to a plain name.
pub fn default_data_dir(name: &str) -> PathBuf {
    data_root().join(name)
}

/// The directory that holds the default data dirs:
/// `$XDG_DATA_HOME/gossipnet`, else `$HOME/.local/share/gossipnet`, else
/// `.gossipnet` under the current directory.
pub fn data_root() -> PathBuf {
    // The XDG spec says a relative XDG_DATA_HOME is invalid and is ignored.
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local").join("share"))
        });
    match base {
        Some(base) => base.join("gossipnet"),
        None => PathBuf::from(".gossipnet"),
    }
}

/// A node's data directory: its identity key and its database.
///
/// A program that keeps one identity across runs opens the directory,
/// takes the key from [`load_or_create_identity`](Self::load_or_create_identity)
/// for [`NodeBuilder::secret`](crate::NodeBuilder::secret), and gives the
/// same path to [`NodeBuilder::data_dir`](crate::NodeBuilder::data_dir) so
/// the node keeps its address book there.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
    /// The lock file, held while this process runs a node on the directory
    /// (see [`DataDir::lock`]); shared by the clones.
    lock: Option<std::sync::Arc<nix::fcntl::Flock<fs::File>>>,
}

/// The lock file in a data directory: locked (`flock`) by the process that
/// runs a node on it, with that process's id written in, for the message
/// another process gets.
pub const LOCK_FILE: &str = "lock";

impl DataDir {
    /// Opens the data dir at `path`, creating it (and missing parents) with
    /// mode 0700 if needed. An existing directory keeps its mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::DataDir {
            path: path.to_owned(),
            source,
        };
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(path).map_err(err)?;
        // `recursive` succeeds on an existing path only if it is a
        // directory, but say so plainly rather than fail later on the key.
        if !fs::metadata(path).map_err(err)?.is_dir() {
            return Err(err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file with that name exists",
            )));
        }
        Ok(Self {
            path: path.to_owned(),
            lock: None,
        })
    }

    /// Takes the directory for this process until this `DataDir` and its
    /// clones are dropped: two nodes on one directory would run with one
    /// identity and overwrite each other's database and control file. The
    /// lock is the kernel's, so a killed process leaves none behind.
    pub fn lock(&mut self) -> Result<(), StoreError> {
        if self.lock.is_some() {
            return Ok(());
        }
        let path = self.path.join(LOCK_FILE);
        let err = |source| StoreError::DataDir {
            path: self.path.clone(),
            source,
        };
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(err)?;
        use nix::fcntl::{Flock, FlockArg};
        let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                let holder = fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse::<u32>().ok());
                return Err(StoreError::InUse {
                    path: self.path.clone(),
                    pid: holder,
                });
            }
            Err((_, errno)) => return Err(err(io::Error::from(errno))),
        };
        use std::io::Write as _;
        locked.set_len(0).map_err(err)?;
        write!(locked, "{}", std::process::id()).map_err(err)?;
        self.lock = Some(std::sync::Arc::new(locked));
        Ok(())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the identity key lives.
    pub(crate) fn identity_path(&self) -> PathBuf {
        self.path.join(IDENTITY_FILE)
    }

    /// Where the database lives.
    pub(crate) fn database_path(&self) -> PathBuf {
        self.path.join(DATABASE_FILE)
    }

    /// Loads the node's secret key, or makes and saves a new one on first
    /// run; the flag says whether it was created.
    ///
    /// A key file that others may read is tightened to 0600 with a warning: a
    /// leaked key lets anyone speak as this node.
    pub fn load_or_create_identity(&self) -> Result<(SecretKey, bool), StoreError> {
        let path = self.identity_path();
        if let Some(key) = load_identity(&path)? {
            return Ok((key, false));
        }
        let key = SecretKey::generate(&mut OsRng);
        match self.publish_identity(&key, &path)? {
            true => Ok((key, true)),
            // Another process published one first: use it, so both agree.
            false => load_identity(&path)?
                .map(|key| (key, false))
                .ok_or_else(|| StoreError::IdentityIo {
                    path: path.clone(),
                    source: io::Error::new(io::ErrorKind::NotFound, "vanished while created"),
                }),
        }
    }

    /// Writes `key` to a temporary file (0600 from its creation, so the
    /// secret is never readable by others) and then publishes it under
    /// `path`. Returns false if a key file appeared there meanwhile.
    fn publish_identity(&self, key: &SecretKey, path: &Path) -> Result<bool, StoreError> {
        let io_err = |source| StoreError::IdentityIo {
            path: path.to_owned(),
            source,
        };
        let tmp = self
            .path
            .join(format!(".{IDENTITY_FILE}.{}.tmp", std::process::id()));
        // A leftover from a crash of a process that had our pid.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(e)),
            _ => {}
        }
        let written = create_private(&tmp, hex_line(&key.to_bytes()).as_bytes());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
        // A hard link publishes without replacing: if two processes start on
        // one data dir at once, the second sees AlreadyExists and adopts the
        // first one's key, where a rename would silently swap it. Filesystems
        // without hard links (FAT) fall back to the rename.
        let published = match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(_) => fs::rename(&tmp, path).map(|()| true),
        };
        let _ = fs::remove_file(&tmp);
        let published = published.map_err(io_err)?;
        // Make the new directory entry durable, not just the file's bytes.
        #[cfg(unix)]
        File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(io_err)?;
        Ok(published)
    }
}

/// Writes `contents` to `path` as a file only its owner can read, replacing
/// any old one whole: the bytes go to a file beside it (`path` with the
/// extension `tmp`), 0600 from its creation and synced, which is then renamed
/// over `path`. A crash thus leaves the old file or the new one, never half
/// of one, and the contents are never readable by others, even for a moment.
///
/// For secrets and what guards them: a key, or a control file that holds an
/// API cookie.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    // A leftover from a crash. If it cannot be removed, creating it below
    // fails and says why.
    let _ = fs::remove_file(&tmp);
    let written = create_private(&tmp, contents).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Creates the file `path` with mode 0600 from the start, writes `contents`
/// and syncs them. Refuses a path that exists, whose mode could be anything.
fn create_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Reads the key file at `path`; `None` if there is none.
fn load_identity(path: &Path) -> Result<Option<SecretKey>, StoreError> {
    let io_err = |source| StoreError::IdentityIo {
        path: path.to_owned(),
        source,
    };
    let malformed = |reason: String| StoreError::MalformedIdentity {
        path: path.to_owned(),
        reason,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(malformed("it is not a regular file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                "identity key file was readable by others; setting its mode to 600"
            );
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(io_err)?;
        }
    }
    // Read one byte past a well-formed file, enough to tell it is too long
    // without reading whatever large file sits there.
    let mut bytes = Vec::with_capacity(KEY_FILE_LEN + 2);
    file.take(KEY_FILE_LEN as u64 + 2)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    parse_key_file(&bytes).map(Some).map_err(malformed)
}

/// Parses 64 hex characters, optionally followed by a newline.
fn parse_key_file(bytes: &[u8]) -> Result<SecretKey, String> {
    let text = bytes
        .strip_suffix(b"\n")
        .map(|t| t.strip_suffix(b"\r").unwrap_or(t))
        .unwrap_or(bytes);
    if text.len() != 64 {
        return Err(format!(
            "expected 64 hex characters, found {} bytes",
            text.len()
        ));
    }
    let mut secret = [0u8; 32];
    for (byte, pair) in secret.iter_mut().zip(text.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (hex_digit(pair[0]), hex_digit(pair[1])) else {
            return Err("expected 64 hex characters, found other characters".into());
        };
        *byte = hi << 4 | lo;
    }
    Ok(SecretKey::from_bytes(&secret))
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// `bytes` as lowercase hex and a newline: the key file's content.
fn hex_line(bytes: &[u8; 32]) -> String {
    let mut s = String::with_capacity(KEY_FILE_LEN);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s.push('\n');
    s
}
