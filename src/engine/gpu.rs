//! What the TensorRT engine cache key needs to know about the machine, read from the NVIDIA
//! libraries themselves at run time (`dlopen` through `libloading`; nothing is linked):
//!
//! * TensorRT version: `getInferLibVersion()` of `libnvinfer.so.10` (then `.so`), encoded as
//!   `major*10000 + minor*100 + patch` since TensorRT 10 (`NvInferVersion.h`; `major*1000 + …`
//!   before);
//! * compute capability of CUDA device 0: `cuInit`, `cuDeviceGet`, `cuDeviceGetAttribute` with
//!   `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR` (75) / `_MINOR` (76) from the driver library
//!   `libcuda.so.1` (Orin = 8.7, Xavier = 7.2).
//!
//! On a machine without these libraries [`probe`] returns an error that says which library is
//! missing; `--backend auto` logs it as the reason TensorRT was skipped.

use std::fmt;

use libloading::Library;

/// Why the TensorRT version or the GPU's compute capability cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// `libnvinfer` cannot be loaded (the loader's messages, one per name tried).
    #[error("TensorRT library libnvinfer.so.10 not found: {0}")]
    NoTensorRt(String),
    /// `libnvinfer` lacks `getInferLibVersion`.
    #[error("libnvinfer has no getInferLibVersion: {0}")]
    NoTensorRtVersion(String),
    /// The CUDA driver library cannot be loaded (the loader's messages, one per name tried).
    #[error("CUDA driver libcuda.so.1 not found (no NVIDIA driver): {0}")]
    NoCudaDriver(String),
    /// The CUDA driver library lacks a function.
    #[error("libcuda lacks {0}")]
    MissingSymbol(&'static str),
    /// `cuInit` failed (its `CUresult`).
    #[error("cuInit failed with CUresult {0} (no usable GPU?)")]
    CudaInit(i32),
    /// `cuDeviceGet(0)` failed (its `CUresult`).
    #[error("cuDeviceGet(0) failed with CUresult {0}")]
    CudaDevice(i32),
    /// `cuDeviceGetAttribute` failed for the major / minor compute capability (`CUresult`s).
    #[error("cuDeviceGetAttribute(compute capability) failed with CUresult {0}/{1}")]
    CudaAttribute(i32, i32),
}

/// TensorRT version and GPU of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// TensorRT version `(major, minor, patch)`.
    pub tensorrt: (u32, u32, u32),
    /// Compute capability `(major, minor)` of CUDA device 0.
    pub compute_capability: (i32, i32),
}

impl fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, c) = self.tensorrt;
        let (m, n) = self.compute_capability;
        write!(f, "TensorRT {a}.{b}.{c}, compute capability {m}.{n}")
    }
}

/// Decodes `getInferLibVersion()` (`NV_TENSORRT_VERSION`).
pub fn decode_trt_version(v: i32) -> (u32, u32, u32) {
    let v = v.max(0) as u32;
    if v >= 100_000 {
        (v / 10_000, (v % 10_000) / 100, v % 100)
    } else {
        (v / 1000, (v % 1000) / 100, v % 100)
    }
}

/// The dynamic loader's own message (`dlerror`, e.g. "libnvinfer.so.10: cannot open shared object
/// file: No such file or directory"): libloading 0.9 keeps it in the error's `source`, its
/// `Display` says only "dlopen failed".
fn loader_message(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => s.to_string(),
        None => e.to_string(),
    }
}

/// The first of `names` that loads; else `missing` of the loader's messages (`; `-separated).
fn open_first(names: &[&str], missing: fn(String) -> GpuError) -> Result<Library, GpuError> {
    let mut errs = Vec::new();
    for n in names {
        // SAFETY: loading NVIDIA's libraries runs their initialisers; they are the libraries the
        // TensorRT execution provider loads anyway.
        match unsafe { Library::new(*n) } {
            Ok(l) => return Ok(l),
            Err(e) => errs.push(loader_message(&e)),
        }
    }
    Err(missing(errs.join("; ")))
}

/// TensorRT version from `libnvinfer`. Errors name the library and the loader's message.
pub fn tensorrt_version() -> Result<(u32, u32, u32), GpuError> {
    let lib = open_first(&["libnvinfer.so.10", "libnvinfer.so"], GpuError::NoTensorRt)?;
    // SAFETY: `int32_t getInferLibVersion()` (NvInferRuntime.h), no arguments.
    let v = unsafe {
        let f = lib
            .get::<unsafe extern "C" fn() -> i32>(b"getInferLibVersion\0")
            .map_err(|e| GpuError::NoTensorRtVersion(e.to_string()))?;
        f()
    };
    Ok(decode_trt_version(v))
}

/// Compute capability of CUDA device 0 through the driver API.
pub fn compute_capability() -> Result<(i32, i32), GpuError> {
    let lib = open_first(&["libcuda.so.1", "libcuda.so"], GpuError::NoCudaDriver)?;
    type Init = unsafe extern "C" fn(u32) -> i32;
    type DeviceGet = unsafe extern "C" fn(*mut i32, i32) -> i32;
    type Attr = unsafe extern "C" fn(*mut i32, i32, i32) -> i32;
    // SAFETY: signatures of cuInit, cuDeviceGet and cuDeviceGetAttribute (cuda.h); CUresult is an
    // int-sized enum, CUdevice an int; the out-pointers are valid locals.
    unsafe {
        let sym = GpuError::MissingSymbol;
        let init = lib.get::<Init>(b"cuInit\0").map_err(|_| sym("cuInit"))?;
        let get = lib
            .get::<DeviceGet>(b"cuDeviceGet\0")
            .map_err(|_| sym("cuDeviceGet"))?;
        let attr = lib
            .get::<Attr>(b"cuDeviceGetAttribute\0")
            .map_err(|_| sym("cuDeviceGetAttribute"))?;
        let r = init(0);
        if r != 0 {
            return Err(GpuError::CudaInit(r));
        }
        let mut dev = 0i32;
        let r = get(&mut dev, 0);
        if r != 0 {
            return Err(GpuError::CudaDevice(r));
        }
        let (mut major, mut minor) = (0i32, 0i32);
        let r1 = attr(&mut major, 75, dev);
        let r2 = attr(&mut minor, 76, dev);
        if r1 != 0 || r2 != 0 {
            return Err(GpuError::CudaAttribute(r1, r2));
        }
        Ok((major, minor))
    }
}

/// TensorRT version and compute capability, or why they cannot be read.
pub fn probe() -> Result<GpuInfo, GpuError> {
    let compute_capability = compute_capability()?;
    let tensorrt = tensorrt_version()?;
    Ok(GpuInfo {
        tensorrt,
        compute_capability,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_named_with_the_loaders_reason() {
        let e = open_first(
            &["libc3n-edge-no-such-library.so.1"],
            GpuError::NoCudaDriver,
        )
        .expect_err("no such library")
        .to_string();
        assert!(
            e.contains("libc3n-edge-no-such-library.so.1")
                && e.contains("cannot open shared object file"),
            "{e}"
        );
    }

    #[test]
    fn trt_versions_decode() {
        assert_eq!(decode_trt_version(100_300), (10, 3, 0)); // JetPack 6
        assert_eq!(decode_trt_version(101_601), (10, 16, 1));
        assert_eq!(decode_trt_version(8_502), (8, 5, 2)); // JetPack 5
    }
}
