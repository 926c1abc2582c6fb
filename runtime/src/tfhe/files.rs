//! Versioned binary files: client key, server keys, encrypted dataset, encrypted model.
//!
//! Layout (little endian):
//!
//! ```text
//! magic "BLTFHE\0\x01" | format u32 | kind u8 | param-set id (u16 len + utf-8)
//! | key fingerprint [32] | plan hash [32] (zeros for keys) | payload len u64
//! | payload sha256 [32] | payload (bincode)
//! ```
//!
//! Every mismatch is a typed [`FileError`] naming the file; writes are atomic
//! (temporary file in the same directory, then rename).

use super::keys::Fingerprint;
use super::params::ParamSetId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: [u8; 8] = *b"BLTFHE\0\x01";
// 2: models and checkpoints carry the tail-average sums (`EncModel::mean`).
// 3: and the encrypted training-loss sums (`EncModel::loss`).
pub const FORMAT_VERSION: u32 = 3;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    ClientKey = 1,
    ServerKeys = 2,
    Dataset = 3,
    Model = 4,
    /// Training state of the server (model, position, counters): see `driver`.
    Checkpoint = 5,
    /// The server's GGSW-conversion keys (plans with products of two server values).
    ConvertKeys = 6,
}

impl FileKind {
    fn from_u8(v: u8) -> Option<FileKind> {
        [
            FileKind::ClientKey,
            FileKind::ServerKeys,
            FileKind::Dataset,
            FileKind::Model,
            FileKind::Checkpoint,
            FileKind::ConvertKeys,
        ]
        .into_iter()
        .find(|k| *k as u8 == v)
    }
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::ClientKey => "client key",
            FileKind::ServerKeys => "server keys",
            FileKind::Dataset => "encrypted dataset",
            FileKind::Model => "encrypted model",
            FileKind::Checkpoint => "training checkpoint",
            FileKind::ConvertKeys => "conversion keys",
        }
    }
}

/// sha256 of the plan's JSON: ties datasets and models to the plan they were made for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PlanHash(pub [u8; 32]);

impl PlanHash {
    pub const NONE: PlanHash = PlanHash([0; 32]);

    pub fn of(plan: &blindtuner_compiler::plan::Plan) -> PlanHash {
        // Serializing plain data to JSON cannot fail; an empty hash input would only
        // make every plan compare equal, so fall back to the debug form.
        let json = serde_json::to_vec(plan).unwrap_or_else(|_| format!("{plan:?}").into_bytes());
        PlanHash(Sha256::digest(json).into())
    }

    fn short(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The header of a file, as read or to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub kind: FileKind,
    pub params: ParamSetId,
    pub fingerprint: Fingerprint,
    pub plan: PlanHash,
}

/// What a reader expects; `None` fields are not checked.
#[derive(Clone, Debug)]
pub struct Expect {
    pub kind: FileKind,
    pub fingerprint: Option<Fingerprint>,
    pub plan: Option<PlanHash>,
}

#[derive(Debug)]
pub struct FileError {
    pub path: PathBuf,
    pub kind: FileErrorKind,
}

#[derive(Debug)]
pub enum FileErrorKind {
    Io(std::io::Error),
    NotOurs,
    UnsupportedVersion(u32),
    WrongKind {
        expected: FileKind,
        found: FileKind,
    },
    UnknownParams(String),
    /// Keys for another parameter set than the ones they are used with.
    ParamsMismatch {
        expected: String,
        found: String,
    },
    WrongKey {
        expected: Fingerprint,
        found: Fingerprint,
    },
    PlanMismatch {
        expected: PlanHash,
        found: PlanHash,
    },
    UnknownKind(u8),
    TruncatedHeader,
    Truncated {
        expected: u64,
        found: u64,
    },
    Corrupted,
    Decode(String),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.kind {
            FileErrorKind::Io(e) => write!(f, "{p}: {e}"),
            FileErrorKind::NotOurs => write!(f, "{p}: not a blindtuner ciphertext/key file (bad magic)"),
            FileErrorKind::UnsupportedVersion(v) => {
                write!(f, "{p}: file format version {v}, this build reads version {FORMAT_VERSION}")
            }
            FileErrorKind::WrongKind { expected, found } => {
                write!(f, "{p}: wrong kind of file: found {}, expected {}", found.describe(), expected.describe())
            }
            FileErrorKind::UnknownKind(k) => write!(f, "{p}: unknown file kind {k}"),
            FileErrorKind::TruncatedHeader => write!(f, "{p}: truncated: the header is incomplete"),
            FileErrorKind::UnknownParams(id) => write!(f, "{p}: unknown parameter set `{id}`"),
            FileErrorKind::ParamsMismatch { expected, found } => {
                write!(f, "{p}: made for {found}, but the keys in use need {expected}")
            }
            FileErrorKind::WrongKey { expected, found } => write!(
                f,
                "{p}: made with key {found}, which does not match the key in use ({expected}): keys from another keygen?"
            ),
            FileErrorKind::PlanMismatch { expected, found } => write!(
                f,
                "{p}: made for plan {}, but the current plan is {} (recompiled model or other spec?)",
                found.short(),
                expected.short()
            ),
            FileErrorKind::Truncated { expected, found } => {
                write!(f, "{p}: truncated: payload has {found} of {expected} bytes")
            }
            FileErrorKind::Corrupted => write!(f, "{p}: corrupted: payload checksum mismatch"),
            FileErrorKind::Decode(e) => write!(f, "{p}: cannot decode payload: {e}"),
        }
    }
}

impl std::error::Error for FileError {}

fn err(path: &Path, kind: FileErrorKind) -> FileError {
    FileError { path: path.to_path_buf(), kind }
}

/// Serialize `value` with `header` and write it atomically.
pub fn write_file<T: Serialize>(path: &Path, header: &Header, value: &T) -> Result<(), FileError> {
    let payload = bincode::serialize(value).map_err(|e| err(path, FileErrorKind::Decode(e.to_string())))?;
    let mut out = Vec::with_capacity(payload.len() + 256);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(header.kind as u8);
    let id = header.params.0.as_bytes();
    let id_len =
        u16::try_from(id.len()).map_err(|_| err(path, FileErrorKind::UnknownParams(header.params.0.clone())))?;
    out.extend_from_slice(&id_len.to_le_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&header.fingerprint.0);
    out.extend_from_slice(&header.plan.0);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&payload));
    out.extend_from_slice(&payload);
    let secret = header.kind == FileKind::ClientKey;
    write_atomic(path, &out, secret).map_err(|e| err(path, FileErrorKind::Io(e)))
}

/// `secret`: create the file readable by its owner only (mode 0600 on Unix) from the
/// first byte, so a client key is never briefly world-readable.
fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    // A leftover temporary file (crashed run, same pid) would keep its old mode.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = secret;
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Read a file's header only (cheap: for `inspect`-style commands and early checks).
pub fn read_header(path: &Path) -> Result<Header, FileError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, FileErrorKind::Io(e)))?;
    parse(path, &bytes).map(|(h, _)| h)
}

/// Read, check against `expect`, verify the checksum and decode.
pub fn read_file<T: DeserializeOwned>(path: &Path, expect: &Expect) -> Result<(Header, T), FileError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, FileErrorKind::Io(e)))?;
    let (header, payload) = parse(path, &bytes)?;
    if header.kind != expect.kind {
        return Err(err(path, FileErrorKind::WrongKind { expected: expect.kind, found: header.kind }));
    }
    if let Some(fp) = expect.fingerprint.filter(|fp| *fp != header.fingerprint) {
        return Err(err(path, FileErrorKind::WrongKey { expected: fp, found: header.fingerprint }));
    }
    if let Some(ph) = expect.plan.filter(|ph| *ph != header.plan) {
        return Err(err(path, FileErrorKind::PlanMismatch { expected: ph, found: header.plan }));
    }
    let value = bincode::deserialize(payload).map_err(|e| err(path, FileErrorKind::Decode(e.to_string())))?;
    Ok((header, value))
}

/// Split and validate the header; returns the checksum-verified payload.
fn parse<'b>(path: &Path, bytes: &'b [u8]) -> Result<(Header, &'b [u8]), FileError> {
    let mut r = Reader { bytes, pos: 0 };
    let head_short = |_| err(path, FileErrorKind::TruncatedHeader);
    if r.take(8).map_err(head_short)? != MAGIC {
        return Err(err(path, FileErrorKind::NotOurs));
    }
    let version = u32::from_le_bytes(r.array().map_err(head_short)?);
    if version != FORMAT_VERSION {
        return Err(err(path, FileErrorKind::UnsupportedVersion(version)));
    }
    let kind_byte = r.take(1).map_err(head_short)?[0];
    let id_len = u16::from_le_bytes(r.array().map_err(head_short)?) as usize;
    let id = String::from_utf8_lossy(r.take(id_len).map_err(head_short)?).into_owned();
    let fingerprint = Fingerprint(r.array().map_err(head_short)?);
    let plan = PlanHash(r.array().map_err(head_short)?);
    let len = u64::from_le_bytes(r.array().map_err(head_short)?);
    let sum: [u8; 32] = r.array().map_err(head_short)?;
    let rest = &bytes[r.pos..];
    if (rest.len() as u64) < len {
        return Err(err(path, FileErrorKind::Truncated { expected: len, found: rest.len() as u64 }));
    }
    let payload = &rest[..len as usize];
    if <[u8; 32]>::from(Sha256::digest(payload)) != sum || rest.len() as u64 != len {
        return Err(err(path, FileErrorKind::Corrupted));
    }
    let kind = FileKind::from_u8(kind_byte).ok_or_else(|| err(path, FileErrorKind::UnknownKind(kind_byte)))?;
    if super::params::ParamSet::from_id(&id).is_none() {
        return Err(err(path, FileErrorKind::UnknownParams(id)));
    }
    Ok((Header { kind, params: ParamSetId(id), fingerprint, plan }, payload))
}

struct Reader<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], ()> {
        let s = self.bytes.get(self.pos..self.pos + n).ok_or(())?;
        self.pos += n;
        Ok(s)
    }
    fn array<const K: usize>(&mut self) -> Result<[u8; K], ()> {
        let s = self.take(K)?;
        let mut a = [0u8; K];
        a.copy_from_slice(s);
        Ok(a)
    }
}

// ---------------------------------------------------------------------------------
// Typed entry points.

use super::cipher::{EncDataset, EncModel};
use super::convert::{ConvertKey, ConvertParams};
use super::keys::{ClientKey, ServerKeys};

pub fn save_client_key(path: &Path, ck: &ClientKey) -> Result<(), FileError> {
    let h = Header {
        kind: FileKind::ClientKey,
        params: ck.params().id(),
        fingerprint: ck.fingerprint(),
        plan: PlanHash::NONE,
    };
    write_file(path, &h, ck)
}

pub fn load_client_key(path: &Path) -> Result<ClientKey, FileError> {
    let (h, ck): (Header, ClientKey) =
        read_file(path, &Expect { kind: FileKind::ClientKey, fingerprint: None, plan: None })?;
    check_self_consistent(path, &h, ck.fingerprint())?;
    Ok(ck)
}

pub fn save_server_keys(path: &Path, sk: &ServerKeys) -> Result<(), FileError> {
    let h = Header {
        kind: FileKind::ServerKeys,
        params: sk.params().id(),
        fingerprint: sk.fingerprint(),
        plan: PlanHash::NONE,
    };
    write_file(path, &h, sk)
}

/// `expected`: the fingerprint of the dataset/model the keys will be used with, if known.
pub fn load_server_keys(path: &Path, expected: Option<Fingerprint>) -> Result<ServerKeys, FileError> {
    // Deserializing the bootstrap key puts it in the FFT plan's order: fix the plan first.
    super::fftplan::pin_all();
    let (h, sk): (Header, ServerKeys) =
        read_file(path, &Expect { kind: FileKind::ServerKeys, fingerprint: expected, plan: None })?;
    check_self_consistent(path, &h, sk.fingerprint())?;
    Ok(sk)
}

/// The conversion keys of `sk`'s client key, beside the server keys. The parameter-set
/// id in the header is the server keys'; the conversion's own decompositions are in the
/// payload and checked on load against the ones this build uses for that set.
pub fn save_convert_key(path: &Path, sk: &ServerKeys, key: &ConvertKey) -> Result<(), FileError> {
    let h = Header {
        kind: FileKind::ConvertKeys,
        params: sk.params().id(),
        fingerprint: key.fingerprint(),
        plan: PlanHash::NONE,
    };
    write_file(path, &h, key)
}

/// Conversion keys made with the same client key as `sk` and for its parameter set.
pub fn load_convert_key(path: &Path, sk: &ServerKeys) -> Result<ConvertKey, FileError> {
    super::fftplan::pin_all();
    let (h, key): (Header, ConvertKey) =
        read_file(path, &Expect { kind: FileKind::ConvertKeys, fingerprint: Some(sk.fingerprint()), plan: None })?;
    check_self_consistent(path, &h, key.fingerprint())?;
    let want = ConvertParams::of(sk.params());
    if h.params != sk.params().id() || key.params() != want {
        let describe = |id: &ParamSetId, c: ConvertParams| {
            format!("{} (conversions ggsw {}, bsk {}, pfks {})", id.0, c.ggsw, c.bsk, c.pfks)
        };
        return Err(err(
            path,
            FileErrorKind::ParamsMismatch {
                expected: describe(&sk.params().id(), want),
                found: describe(&h.params, key.params()),
            },
        ));
    }
    Ok(key)
}

pub fn save_dataset(path: &Path, ck: &ClientKey, plan: PlanHash, ds: &EncDataset) -> Result<(), FileError> {
    let h = Header { kind: FileKind::Dataset, params: ck.params().id(), fingerprint: ck.fingerprint(), plan };
    write_file(path, &h, ds)
}

pub fn load_dataset(path: &Path, key: Fingerprint, plan: PlanHash) -> Result<EncDataset, FileError> {
    read_file(path, &Expect { kind: FileKind::Dataset, fingerprint: Some(key), plan: Some(plan) }).map(|(_, d)| d)
}

/// Save an encrypted model or checkpoint; `params` and `key` come from the keys in use
/// (client side at init, server side during training).
pub fn save_model(
    path: &Path,
    params: ParamSetId,
    key: Fingerprint,
    plan: PlanHash,
    model: &EncModel,
) -> Result<(), FileError> {
    let h = Header { kind: FileKind::Model, params, fingerprint: key, plan };
    write_file(path, &h, model)
}

pub fn load_model(path: &Path, key: Fingerprint, plan: PlanHash) -> Result<EncModel, FileError> {
    read_file(path, &Expect { kind: FileKind::Model, fingerprint: Some(key), plan: Some(plan) }).map(|(_, m)| m)
}

/// A key file whose header disagrees with its payload was edited or spliced.
fn check_self_consistent(path: &Path, h: &Header, payload_fp: Fingerprint) -> Result<(), FileError> {
    if h.fingerprint != payload_fp {
        return Err(err(path, FileErrorKind::WrongKey { expected: h.fingerprint, found: payload_fp }));
    }
    Ok(())
}
