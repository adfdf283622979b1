//! TensorRT engine cache layout (docs/integration-conventions.md §1.7, recommendation): one
//! directory per key under a writable cache root (default `$CACHE_DIRECTORY/engines`, i.e.
//! `/var/cache/c3n-edge/engines` under the systemd unit), named
//!
//! ```text
//! <sha256 of the model, 16 hex>_trt<major.minor.patch>_sm<major><minor>_<precision>_f<T>x3x<S>x<S>_a<T>x1x96x64
//! ```
//!
//! for the whole graph (windows of T frames), and for each part of the frame split that
//! streaming runs at batch 1 ([`Part`], issue 25) the same with the part before the shapes:
//!
//! ```text
//! <sha256 16 hex>_trt<…>_sm<…>_<precision>_per-frame_f1x3x<S>x<S>_a1x1x96x64
//! <sha256 16 hex>_trt<…>_sm<…>_<precision>_after_f1x3x<S>x<S>_a1x1x96x64
//! ```
//!
//! (the after part's inputs are tensors inside the graph; the model's batch-1 input shapes
//! determine them),
//! holding ONNX Runtime's TensorRT engine and profile files (`trt_engine_cache_path`) and a
//! `key.txt` with the full key. The timing cache (`trt_timing_cache_path`) is shared per TensorRT
//! version and GPU (`timing_trt<ver>_sm<cc>/`), since tactic timings do not depend on the model.
//!
//! Atomicity: a missing entry is built into `<entry>.tmp-<pid>` and renamed to `<entry>` once the
//! session (and so the engine) has been created — a crash mid-build leaves only a temp directory,
//! never a half-written entry. A concurrent builder that loses the rename race keeps its temp
//! directory's engine for its own session and removes nothing else.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::gpu::GpuInfo;
use super::{ModelContract, Precision};

/// Errors of the engine cache; each names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The model file cannot be read (for its sha256).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A cache directory cannot be created.
    #[error("engine cache directory {dir} is not writable: {source}")]
    NotWritable {
        /// The directory.
        dir: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A file in the cache cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A built engine cannot be moved to its entry.
    #[error("cannot move the engine {from} to {to}: {source}")]
    Publish {
        /// The temp directory.
        from: PathBuf,
        /// The entry.
        to: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// Which graph of a model an engine is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The whole graph, at batch T (windows).
    Whole,
    /// The frame split's part before the clip means, at batch 1 (streaming,
    /// [`crate::engine::split`]).
    PerFrame,
    /// The frame split's part after the clip means, at batch 1.
    After,
}

impl Part {
    /// Its name in directory names and `key.txt` (`whole`, `per-frame`, `after`).
    pub fn name(self) -> &'static str {
        match self {
            Part::Whole => "whole",
            Part::PerFrame => "per-frame",
            Part::After => "after",
        }
    }
}

/// Everything the engine depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// sha256 of the ONNX file, lowercase hex (64 characters).
    pub model_sha256: String,
    /// TensorRT version.
    pub tensorrt: (u32, u32, u32),
    /// GPU compute capability.
    pub compute_capability: (i32, i32),
    /// Precision flags given to TensorRT.
    pub precision: Precision,
    /// The graph built: the whole model or a part of its frame split.
    pub part: Part,
    /// Static input shapes of the model, contract order (`frames`, `audio_logmel`): batch T for
    /// [`Part::Whole`], batch 1 for the parts.
    pub input_shapes: [Vec<usize>; 2],
}

/// sha256 of a file, lowercase hex. Errors name the file.
pub fn sha256_file(path: &Path) -> Result<String, CacheError> {
    let read_err = |source| CacheError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(read_err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn dims(s: &[usize]) -> String {
    s.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

impl CacheKey {
    /// The key of `part` of `contract`'s model file on this GPU at `precision`.
    ///
    /// Errors: [`CacheError::Read`] when the model file cannot be read.
    pub fn new(
        contract: &ModelContract,
        gpu: &GpuInfo,
        precision: Precision,
        part: Part,
    ) -> Result<Self, CacheError> {
        let [(_, mut f), (_, mut a)] = contract.input_shapes();
        if part != Part::Whole {
            f[0] = 1;
            a[0] = 1;
        }
        Ok(Self {
            model_sha256: sha256_file(&contract.path)?,
            tensorrt: gpu.tensorrt,
            compute_capability: gpu.compute_capability,
            precision,
            part,
            input_shapes: [f, a],
        })
    }

    fn trt(&self) -> String {
        let (a, b, c) = self.tensorrt;
        format!(
            "trt{a}.{b}.{c}_sm{}{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }

    /// Directory name of the entry (the module docs); the whole graph's has no part, as
    /// before streaming, so that engines built then are still found.
    pub fn dir_name(&self) -> String {
        let part = match self.part {
            Part::Whole => String::new(),
            p => format!("{}_", p.name()),
        };
        format!(
            "{}_{}_{}_{part}f{}_a{}",
            &self.model_sha256[..16.min(self.model_sha256.len())],
            self.trt(),
            self.precision,
            dims(&self.input_shapes[0]),
            dims(&self.input_shapes[1])
        )
    }

    /// `key.txt` contents.
    pub fn describe(&self) -> String {
        let (a, b, c) = self.tensorrt;
        format!(
            "model_sha256={}\ntensorrt={a}.{b}.{c}\ncompute_capability={}.{}\nprecision={}\npart={}\nframes={}\naudio_logmel={}\n",
            self.model_sha256,
            self.compute_capability.0,
            self.compute_capability.1,
            self.precision,
            self.part.name(),
            dims(&self.input_shapes[0]),
            dims(&self.input_shapes[1])
        )
    }
}

/// Where one key's engine lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Final directory of the entry.
    pub dir: PathBuf,
    /// Shared timing-cache directory.
    pub timing_dir: PathBuf,
    /// Whether `dir` already holds an engine (`*.engine`).
    pub hit: bool,
    /// Directory ONNX Runtime writes to: `dir` on a hit, a temp sibling otherwise.
    pub work_dir: PathBuf,
}

/// Prepares the entry of `key` under `root` (creating directories).
///
/// Errors: [`CacheError::NotWritable`], [`CacheError::Write`] (naming the directory or file).
pub fn prepare(root: &Path, key: &CacheKey) -> Result<CacheEntry, CacheError> {
    let dir = root.join(key.dir_name());
    let timing_dir = root.join(format!("timing_{}", key.trt()));
    let mkdir = |d: &Path| {
        std::fs::create_dir_all(d).map_err(|source| CacheError::NotWritable {
            dir: d.to_path_buf(),
            source,
        })
    };
    mkdir(&timing_dir)?;
    let hit = has_engine(&dir);
    let work_dir = if hit {
        dir.clone()
    } else {
        let tmp = root.join(format!("{}.tmp-{}", key.dir_name(), std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        mkdir(&tmp)?;
        let key_file = tmp.join("key.txt");
        std::fs::write(&key_file, key.describe()).map_err(|source| CacheError::Write {
            path: key_file.clone(),
            source,
        })?;
        tmp
    };
    Ok(CacheEntry {
        dir,
        timing_dir,
        hit,
        work_dir,
    })
}

/// Whether `dir` holds a built engine.
pub fn has_engine(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "engine"))
        })
        .unwrap_or(false)
}

/// Publishes a freshly built entry (`work_dir` → `dir`, one `rename`). Returns `false` when the
/// temp directory holds no engine (nothing to publish) or another process published first.
///
/// Errors: [`CacheError::Publish`] when the rename fails and no engine is at `dir`.
pub fn publish(entry: &CacheEntry) -> Result<bool, CacheError> {
    if entry.hit || !has_engine(&entry.work_dir) {
        return Ok(false);
    }
    match std::fs::rename(&entry.work_dir, &entry.dir) {
        Ok(()) => Ok(true),
        Err(_) if has_engine(&entry.dir) => Ok(false),
        Err(source) => Err(CacheError::Publish {
            from: entry.work_dir.clone(),
            to: entry.dir.clone(),
            source,
        }),
    }
}

/// The default cache root: `$C3N_ENGINE_CACHE`, else `$CACHE_DIRECTORY/engines` (systemd
/// `CacheDirectory=`), else `$XDG_CACHE_HOME/c3n-edge/engines`, else `~/.cache/c3n-edge/engines`.
pub fn default_root() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("C3N_ENGINE_CACHE") {
        return p;
    }
    if let Some(p) = var("CACHE_DIRECTORY") {
        // systemd may list several directories separated by ':'; the first is ours
        let first = p
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        return PathBuf::from(first).join("engines");
    }
    if let Some(p) = var("XDG_CACHE_HOME") {
        return p.join("c3n-edge/engines");
    }
    match var("HOME") {
        Some(h) => h.join(".cache/c3n-edge/engines"),
        None => PathBuf::from("c3n-edge-engines"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(prec: Precision) -> CacheKey {
        CacheKey {
            model_sha256: "ab".repeat(32),
            tensorrt: (10, 3, 0),
            compute_capability: (8, 7),
            precision: prec,
            part: Part::Whole,
            input_shapes: [vec![5, 3, 224, 224], vec![5, 1, 96, 64]],
        }
    }

    #[test]
    fn key_names_every_component() {
        let k = key(Precision::Fp16);
        assert_eq!(
            k.dir_name(),
            "abababababababab_trt10.3.0_sm87_fp16_f5x3x224x224_a5x1x96x64"
        );
        assert_ne!(k.dir_name(), key(Precision::Int8).dir_name());
        assert!(k
            .describe()
            .contains(&format!("model_sha256={}", "ab".repeat(32))));
    }

    #[test]
    fn each_part_of_the_split_has_its_own_entry() {
        let part = |p: Part| CacheKey {
            part: p,
            input_shapes: [vec![1, 3, 224, 224], vec![1, 1, 96, 64]],
            ..key(Precision::Fp16)
        };
        let (per_frame, after) = (part(Part::PerFrame), part(Part::After));
        assert_eq!(
            per_frame.dir_name(),
            "abababababababab_trt10.3.0_sm87_fp16_per-frame_f1x3x224x224_a1x1x96x64"
        );
        assert_eq!(
            after.dir_name(),
            "abababababababab_trt10.3.0_sm87_fp16_after_f1x3x224x224_a1x1x96x64"
        );
        // the whole graph's name is the one of engines cached before streaming
        let whole = key(Precision::Fp16);
        let names = [whole.dir_name(), per_frame.dir_name(), after.dir_name()];
        assert!(names[0] != names[1] && names[1] != names[2] && names[0] != names[2]);
        assert!(after.describe().contains("part=after\n"));
        assert!(whole.describe().contains("part=whole\n"));
        // and on disk: two entries, published one by one
        let root = std::env::temp_dir().join(format!("c3n-cache-parts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (a, b) = (
            prepare(&root, &per_frame).unwrap(),
            prepare(&root, &after).unwrap(),
        );
        assert_ne!(a.dir, b.dir);
        assert_ne!(a.work_dir, b.work_dir);
        assert_eq!(a.timing_dir, b.timing_dir);
        std::fs::write(a.work_dir.join("x.engine"), b"x").unwrap();
        assert!(publish(&a).unwrap() && !publish(&b).unwrap());
        assert!(prepare(&root, &per_frame).unwrap().hit && !prepare(&root, &after).unwrap().hit);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn build_then_publish_atomically_then_hit() {
        let root = std::env::temp_dir().join(format!("c3n-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let k = key(Precision::Fp16);
        let e = prepare(&root, &k).unwrap();
        assert!(!e.hit && e.work_dir != e.dir && e.work_dir.join("key.txt").is_file());
        // no engine written (e.g. the build failed): nothing is published
        assert!(!publish(&e).unwrap());
        assert!(!e.dir.exists());
        std::fs::write(
            e.work_dir.join("TensorrtExecutionProvider_x_sm87.engine"),
            b"x",
        )
        .unwrap();
        assert!(publish(&e).unwrap());
        assert!(has_engine(&e.dir) && !e.work_dir.exists());
        let again = prepare(&root, &k).unwrap();
        assert!(again.hit && again.work_dir == again.dir);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn sha256_of_a_file() {
        let p = std::env::temp_dir().join(format!("c3n-sha-{}", std::process::id()));
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_file(&p).unwrap();
        assert!(sha256_file(&p)
            .unwrap_err()
            .to_string()
            .contains(&p.display().to_string()));
    }
}
