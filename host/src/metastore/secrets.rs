//! Connections encrypted at rest: each stored connection is sealed with
//! AES-256-GCM under a key kept in a file beside the metastore
//! (`connections.key`, readable by its owner only), so a copy of the metastore
//! file alone gives away no password.
//!
//! A sealed value is `aes256gcm:<key id>:<nonce>:<ciphertext>` (hex), the key id
//! being the first 4 bytes of the key's SHA-256: values sealed under an earlier
//! key stay readable while a rotation is under way or was cut short. The
//! record's own key (tenant and connection id) is bound in as associated data,
//! so a sealed value copied under another tenant's key does not open.
//!
//! Rotation (`aileron db rotate-key`, the server stopped): a new key is written
//! to `connections.key.new`, every connection is sealed again under it in one
//! transaction, then the new file replaces the old (and the folder is synced).
//! Whatever step a crash interrupts, every key a stored value may need is still
//! on disk, and the keyring loads them all; the next rotation first seals
//! everything under the current key and clears the leftovers, so it never
//! overwrites a key something is still sealed under. A missing key file while
//! sealed connections exist is an error at start, never a new key.

use super::{MetastoreError, Result};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What every sealed value starts with; anything else is a connection stored
/// before encryption (plain JSON), sealed at the next open.
const PREFIX: &str = "aes256gcm:";

/// One key and its id.
#[derive(Clone)]
struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl Key {
    fn new(bytes: &[u8; 32]) -> Self {
        Key {
            id: hex::encode(&Sha256::digest(bytes)[..4]),
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }
}

/// The keys connections are sealed and opened with: the current one seals.
pub struct Keyring {
    current: Key,
    others: Vec<Key>,
}

/// The key files of a metastore at `db_path`: current, being rotated in, and
/// the one rotated out.
fn key_paths(db_path: &Path) -> [PathBuf; 3] {
    let file = |name: &str| db_path.with_file_name(name);
    [
        file("connections.key"),
        file("connections.key.new"),
        file("connections.key.old"),
    ]
}

fn random_key() -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| MetastoreError::Random(e.to_string()))?;
    Ok(key)
}

fn secrets_error(path: &Path, e: impl std::fmt::Display) -> MetastoreError {
    MetastoreError::Secrets(format!("{}: {e}", path.display()))
}

/// Writes a key file readable by its owner only, flushed before it is used.
fn write_key(path: &Path, key: &[u8; 32]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| secrets_error(path, e))?;
    file.write_all(hex::encode(key).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| secrets_error(path, e))
}

fn read_key(path: &Path) -> Result<Option<[u8; 32]>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(secrets_error(path, e)),
    };
    let bytes = hex::decode(text.trim()).map_err(|e| secrets_error(path, e))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| secrets_error(path, "not a 32-byte key in hex"))?;
    Ok(Some(key))
}

impl Keyring {
    /// The keys of the metastore at `db_path`, the current one made on first
    /// use: only when nothing is sealed yet (`sealed_exist`), since a new key
    /// cannot open what an earlier one sealed.
    pub(super) fn load(db_path: &Path, sealed_exist: bool) -> Result<Self> {
        let [current_path, new_path, old_path] = key_paths(db_path);
        let current = match read_key(&current_path)? {
            Some(key) => key,
            None if sealed_exist => {
                return Err(secrets_error(
                    &current_path,
                    "missing, but the metastore holds connections sealed under it: restore \
                     it from the backup it was kept with",
                ));
            }
            None => {
                let key = random_key()?;
                write_key(&current_path, &key)?;
                key
            }
        };
        let mut others = Vec::new();
        for path in [new_path, old_path] {
            if let Some(key) = read_key(&path)? {
                others.push(Key::new(&key));
            }
        }
        Ok(Keyring {
            current: Key::new(&current),
            others,
        })
    }

    /// A keyring with a fresh key that lives in memory only.
    pub(super) fn ephemeral() -> Result<Self> {
        Ok(Keyring {
            current: Key::new(&random_key()?),
            others: Vec::new(),
        })
    }

    /// `plain` sealed under the current key, bound to the record `key`.
    pub(super) fn seal(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.current, key, plain)
    }

    /// The plain text of a stored value: opened if sealed, as it is if it
    /// predates encryption.
    pub(super) fn open(&self, key: &str, stored: &[u8]) -> Result<Vec<u8>> {
        let Some(sealed) = stored.strip_prefix(PREFIX.as_bytes()) else {
            return Ok(stored.to_vec());
        };
        let bad = |reason| MetastoreError::BadRecord {
            key: key.replace('\0', "/"),
            reason,
        };
        let text = std::str::from_utf8(sealed).map_err(|_| bad("a sealed value is not text"))?;
        let mut parts = text.splitn(3, ':');
        let (Some(id), Some(nonce), Some(ciphertext)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("a sealed value without its parts"));
        };
        let with = std::iter::once(&self.current)
            .chain(&self.others)
            .find(|k| k.id == id)
            .ok_or_else(|| bad("sealed under a key that is not in connections.key"))?;
        let nonce = hex::decode(nonce).map_err(|_| bad("a sealed value's nonce is not hex"))?;
        if nonce.len() != 12 {
            return Err(bad("a sealed value's nonce is not 12 bytes"));
        }
        let ciphertext =
            hex::decode(ciphertext).map_err(|_| bad("a sealed value's text is not hex"))?;
        let payload = Payload {
            msg: ciphertext.as_slice(),
            aad: key.as_bytes(),
        };
        with.cipher
            .decrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| bad("a sealed value does not open with its key (altered?)"))
    }

    /// Whether a stored value is sealed under the current key already.
    pub(super) fn is_current(&self, stored: &[u8]) -> bool {
        stored.starts_with(format!("{PREFIX}{}:", self.current.id).as_bytes())
    }
}

fn seal_with(key: &Key, record: &str, plain: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| MetastoreError::Random(e.to_string()))?;
    let payload = Payload {
        msg: plain,
        aad: record.as_bytes(),
    };
    let ciphertext = key
        .cipher
        .encrypt(Nonce::from_slice(&nonce), payload)
        .map_err(|_| MetastoreError::Secrets("encryption failed".into()))?;
    Ok(format!(
        "{PREFIX}{}:{}:{}",
        key.id,
        hex::encode(nonce),
        hex::encode(ciphertext)
    )
    .into_bytes())
}

/// The steps of a rotation that touch files; the metastore does the rest.
pub(super) struct Rotation {
    db_path: PathBuf,
    new: [u8; 32],
}

impl Rotation {
    /// Writes the new key beside the current one and returns a keyring whose
    /// current key is the new one (the old ones still open what they sealed).
    pub(super) fn begin(db_path: &Path, old: &Keyring) -> Result<(Self, Keyring)> {
        let new = random_key()?;
        let [_, new_path, _] = key_paths(db_path);
        write_key(&new_path, &new)?;
        let others = std::iter::once(&old.current)
            .chain(&old.others)
            .cloned()
            .collect();
        let keyring = Keyring {
            current: Key::new(&new),
            others,
        };
        Ok((
            Rotation {
                db_path: db_path.to_path_buf(),
                new,
            },
            keyring,
        ))
    }

    /// After every value is sealed under the new key: it becomes the key file.
    pub(super) fn finish(self) -> Result<()> {
        let [current, new_path, old_path] = key_paths(&self.db_path);
        std::fs::rename(&current, &old_path).map_err(|e| secrets_error(&current, e))?;
        std::fs::rename(&new_path, &current).map_err(|e| secrets_error(&new_path, e))?;
        sync_folder(&current)?;
        std::fs::remove_file(&old_path).map_err(|e| secrets_error(&old_path, e))?;
        debug_assert_eq!(read_key(&current).ok().flatten(), Some(self.new));
        Ok(())
    }
}

/// Makes the renames of the key files in `file`'s folder durable.
fn sync_folder(file: &Path) -> Result<()> {
    let folder = file.parent().unwrap_or(Path::new("."));
    std::fs::File::open(folder)
        .and_then(|f| f.sync_all())
        .map_err(|e| secrets_error(folder, e))
}

/// Removes the key files a rotation cut short left, once nothing is sealed
/// under them any more.
fn clear_leftovers(db_path: &Path) -> Result<()> {
    let [current, new_path, old_path] = key_paths(db_path);
    for path in [new_path, old_path] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(secrets_error(&path, e)),
        }
    }
    sync_folder(&current)
}

/// Whether the database holds any sealed connection (false for a new one).
pub(super) fn any_sealed(db: &redb::Database) -> Result<bool> {
    use redb::{ReadableDatabase, ReadableTable};
    let txn = db.begin_read()?;
    let table = match txn.open_table(super::CONNECTIONS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    for item in table.iter()? {
        if item?.1.value().starts_with(PREFIX.as_bytes()) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl super::Metastore {
    /// Seals every connection stored before encryption, in one transaction (at
    /// open: connections are few).
    pub(super) fn seal_plain_connections(&self) -> Result<()> {
        self.reseal(&self.keys(), |stored| {
            !stored.starts_with(PREFIX.as_bytes())
        })
        .map(|_| ())
    }

    /// The keyring as it is now.
    pub(super) fn keys(&self) -> std::sync::Arc<Keyring> {
        // A panic cannot leave the Arc half-replaced: poisoning is ignored.
        self.keyring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Seals every connection again under a new key, which then replaces the
    /// key file. The server must be stopped (redb allows one process per file).
    /// Returns how many connections were sealed again.
    pub fn rotate_connections_key(&self) -> Result<usize> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        // A rotation cut short left values under `.new` or `.old`: seal them
        // under the current key first, so no key file is overwritten or
        // removed while something is still sealed under it.
        let current = self.keys();
        self.reseal(&current, |stored| !current.is_current(stored))?;
        clear_leftovers(path)?;
        let (rotation, keyring) = Rotation::begin(path, &self.keys())?;
        let count = self.reseal(&keyring, |stored| !keyring.is_current(stored))?;
        rotation.finish()?;
        *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(keyring);
        Ok(count)
    }

    /// Opens and seals again, under `keyring`'s current key, every connection
    /// `needs` picks; one transaction.
    fn reseal(&self, keyring: &Keyring, needs: impl Fn(&[u8]) -> bool) -> Result<usize> {
        use redb::ReadableTable;
        let txn = self.db.begin_write()?;
        let mut count = 0;
        {
            let mut table = txn.open_table(super::CONNECTIONS)?;
            let mut resealed = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                if needs(v.value()) {
                    let plain = keyring.open(k.value(), v.value())?;
                    resealed.push((k.value().to_owned(), keyring.seal(k.value(), &plain)?));
                }
            }
            for (k, v) in resealed {
                table.insert(k.as_str(), v.as_slice())?;
                count += 1;
            }
        }
        txn.commit()?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_seals_everything_again_under_a_new_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("aileron.redb");
        let key_file = dir.path().join("connections.key");
        let before;
        {
            let m = super::super::Metastore::open(&db).unwrap();
            m.set_connection("t", "c", r#"{"password":"hunter2"}"#)
                .unwrap();
            before = std::fs::read_to_string(&key_file).unwrap();
            assert_eq!(m.rotate_connections_key().unwrap(), 1);
            assert_ne!(std::fs::read_to_string(&key_file).unwrap(), before);
            assert_eq!(
                m.connection("t", "c").unwrap().unwrap(),
                r#"{"password":"hunter2"}"#
            );
        }
        // After a restart, with only the new key file on disk.
        assert!(!dir.path().join("connections.key.old").exists());
        assert!(!dir.path().join("connections.key.new").exists());
        let m = super::super::Metastore::open(&db).unwrap();
        assert_eq!(
            m.connection("t", "c").unwrap().unwrap(),
            r#"{"password":"hunter2"}"#
        );
        // The file holds no password in the clear.
        drop(m);
        let bytes = std::fs::read(&db).unwrap();
        assert!(!bytes.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn connections_stored_before_encryption_are_sealed_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("aileron.redb");
        {
            let m = super::super::Metastore::open(&db).unwrap();
            // As a store written before encryption holds it.
            let mut b = super::super::WriteBatch::default();
            b.put_raw(
                super::super::CONNECTIONS,
                super::super::key(&["t", "old"]),
                br#"{"password":"plain"}"#.to_vec(),
            );
            m.commit(b).unwrap();
        }
        let m = super::super::Metastore::open(&db).unwrap();
        let stored = m
            .get_raw(super::super::CONNECTIONS, &super::super::key(&["t", "old"]))
            .unwrap()
            .unwrap();
        assert!(stored.starts_with(PREFIX.as_bytes()));
        assert_eq!(
            m.connections("t").unwrap(),
            vec![("old".to_owned(), r#"{"password":"plain"}"#.to_owned())]
        );
    }

    #[test]
    fn values_are_sealed_opened_and_refused_when_altered() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("aileron.redb");
        let keys = Keyring::load(&db, false).unwrap();
        let sealed = keys.seal("k", br#"{"password":"hunter2"}"#).unwrap();
        let text = String::from_utf8(sealed.clone()).unwrap();
        assert!(
            text.starts_with(PREFIX) && !text.contains("hunter2"),
            "{text}"
        );
        assert_eq!(
            keys.open("k", &sealed).unwrap(),
            br#"{"password":"hunter2"}"#
        );
        // Plain JSON from before encryption reads as it is.
        assert_eq!(keys.open("k", b"{}").unwrap(), b"{}");
        // One bit flipped in the ciphertext: refused, not garbage.
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        assert!(keys.open("k", &altered).is_err());
        // The same key file opens it after a restart; the file is private.
        let again = Keyring::load(&db, true).unwrap();
        assert_eq!(
            again.open("k", &sealed).unwrap(),
            br#"{"password":"hunter2"}"#
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("connections.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Another key does not open it, nor the same key under another record.
        let other = Keyring::ephemeral().unwrap();
        assert!(other.open("k", &sealed).is_err());
        assert!(keys.open("other tenant's k", &sealed).is_err());
        // Without its key file, sealed values make start-up fail rather than
        // get a new key that opens nothing.
        std::fs::remove_file(dir.path().join("connections.key")).unwrap();
        let err = Keyring::load(&db, true).err().unwrap().to_string();
        assert!(err.contains("restore it from the backup"), "{err}");
    }
}
