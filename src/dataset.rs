//! AVSBench (object subsets S4 and MS3) reader; folder layout and CSV as docs/avsbench.md §1–2,
//! masks §5.
//!
//! `DATASET_DIR` may contain `Single-source/` (S4), `Multi-sources/` (MS3) or both:
//!
//! * S4: `Single-source/s4_meta_data.csv` (header row; columns by position: 0 video id, 1 start s,
//!   2 category, 3 split); frames `s4_data/visual_frames/<split>/<category>/<vid>/<vid>_<i>.png`,
//!   audio `s4_data/audio_wav/<split>/<category>/<vid>.wav`, masks
//!   `s4_data/gt_masks/<split>/<category>/<vid>/<vid>_<i>.png`.
//! * MS3: `Multi-sources/ms3_meta_data.csv` (header; 0 video id, 1 split); frames
//!   `ms3_data/visual_frames/<vid>/<vid>.mp4_<i>.png` (no split folder), audio
//!   `ms3_data/audio_wav/<split>/<vid>.wav`, masks `ms3_data/gt_masks/<split>/<vid>/<vid>_<i>.png`.
//!
//! Frame index `i` runs 1…5 (one frame per second). Masks are binarised as *any channel > 0*.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::Array2;

use crate::frontend::image::{read_rgb_limited, ImageError, DEFAULT_MAX_PIXELS};

/// Frames per AVSBench clip (one per second, 5 s).
pub const FRAMES_PER_CLIP: usize = 5;
/// Seconds between consecutive AVSBench frames (slot length for the audio patches).
pub const FRAME_SLOT_S: f64 = 1.0;

/// AVSBench object subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subset {
    /// Single-source (`Single-source/`).
    S4,
    /// Multi-sources (`Multi-sources/`).
    Ms3,
}

impl fmt::Display for Subset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Subset::S4 => "s4",
            Subset::Ms3 => "ms3",
        })
    }
}

/// Which subsets to load: one, or every one present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubsetFilter {
    /// Only this subset (its folder must exist).
    Only(Subset),
    /// Every subset whose folder exists (at least one must).
    All,
}

/// A subset name other than `s4`, `ms3` or `all` ([`SubsetFilter::from_str`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown subset `{0}` (expected s4, ms3 or all)")]
pub struct UnknownSubset(pub String);

impl FromStr for SubsetFilter {
    type Err = UnknownSubset;
    fn from_str(s: &str) -> Result<Self, UnknownSubset> {
        match s {
            "s4" => Ok(Self::Only(Subset::S4)),
            "ms3" => Ok(Self::Only(Subset::Ms3)),
            "all" => Ok(Self::All),
            o => Err(UnknownSubset(o.to_string())),
        }
    }
}

/// Errors while reading the dataset; each names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Neither `Single-source/` nor `Multi-sources/` (or not the requested one) exists.
    #[error("{root}: no AVSBench {what} folder found")]
    NoSubset {
        /// Dataset root.
        root: PathBuf,
        /// What was looked for.
        what: String,
    },
    /// The metadata CSV cannot be read or a row is malformed.
    #[error("{path}: {reason}")]
    Csv {
        /// CSV file.
        path: PathBuf,
        /// What is wrong (with line number when known).
        reason: String,
    },
    /// A mask PNG cannot be read.
    #[error("cannot read mask {path}: {source}")]
    Mask {
        /// Mask file.
        path: PathBuf,
        /// Decoder error.
        #[source]
        source: ::image::ImageError,
    },
    /// A mask PNG larger than [`DEFAULT_MAX_PIXELS`] (from its header) or than any mask within
    /// it can be (from its file size); nothing was allocated for its pixels.
    #[error("cannot read mask {source}")]
    MaskTooLarge {
        /// [`ImageError::TooLarge`] or [`ImageError::FileTooLarge`] (names the file).
        #[source]
        source: ImageError,
    },
}

/// One AVSBench clip with the paths of its files (existence is not checked here).
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// Subset.
    pub subset: Subset,
    /// Video id (CSV column 0).
    pub vid: String,
    /// S4 category (CSV column 2); `None` for MS3.
    pub category: Option<String>,
    /// Split (`train`, `val`, `test`).
    pub split: String,
    /// Frame PNGs, i = 1…5.
    pub frames: Vec<PathBuf>,
    /// 16 kHz WAV of the clip.
    pub wav: PathBuf,
    /// Ground-truth mask PNGs, i = 1…5 (S4 train has only i = 1 on disk).
    pub masks: Vec<PathBuf>,
}

/// Subset folder names and CSV file names.
fn subset_paths(root: &Path, s: Subset) -> (PathBuf, PathBuf) {
    match s {
        Subset::S4 => (
            root.join("Single-source"),
            root.join("Single-source/s4_meta_data.csv"),
        ),
        Subset::Ms3 => (
            root.join("Multi-sources"),
            root.join("Multi-sources/ms3_meta_data.csv"),
        ),
    }
}

/// Subsets present under `root` that match `filter`, in S4, MS3 order.
pub fn available_subsets(root: &Path, filter: SubsetFilter) -> Result<Vec<Subset>, DatasetError> {
    let wanted = match filter {
        SubsetFilter::Only(s) => vec![s],
        SubsetFilter::All => vec![Subset::S4, Subset::Ms3],
    };
    let found: Vec<Subset> = wanted
        .into_iter()
        .filter(|&s| subset_paths(root, s).0.is_dir())
        .collect();
    if found.is_empty() {
        let what = match filter {
            SubsetFilter::Only(Subset::S4) => "Single-source/".to_string(),
            SubsetFilter::Only(Subset::Ms3) => "Multi-sources/".to_string(),
            SubsetFilter::All => "Single-source/ or Multi-sources/".to_string(),
        };
        return Err(DatasetError::NoSubset {
            root: root.to_path_buf(),
            what,
        });
    }
    Ok(found)
}

/// Clips of `subset` in `split`, in CSV order.
pub fn load_clips(root: &Path, subset: Subset, split: &str) -> Result<Vec<Clip>, DatasetError> {
    let (dir, csv_path) = subset_paths(root, subset);
    let csv_err = |reason: String| DatasetError::Csv {
        path: csv_path.clone(),
        reason,
    };
    let text = read_csv_bytes(&csv_path)?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_slice());
    let min_cols = match subset {
        Subset::S4 => 4,
        Subset::Ms3 => 2,
    };
    let mut clips = Vec::new();
    for (row, rec) in rdr.byte_records().enumerate() {
        if row >= MAX_CSV_RECORDS {
            return Err(csv_err(format!(
                "more than {MAX_CSV_RECORDS} records: not an AVSBench metadata file"
            )));
        }
        let rec = rec.map_err(|e| csv_err(e.to_string()))?;
        let line = rec.position().map_or(row as u64 + 2, csv::Position::line);
        let rec = utf8_record(&rec, line, &csv_path)?;
        if rec.len() < min_cols {
            return Err(csv_err(format!(
                "line {line}: expected at least {min_cols} columns, found {}",
                rec.len()
            )));
        }
        let field = |i: usize| rec.get(i).unwrap_or_default().trim().to_string();
        let vid = field(0);
        if vid.is_empty() || vid.contains('/') || vid.contains("..") {
            return Err(csv_err(format!("line {line}: invalid video id {vid:?}")));
        }
        let clip = match subset {
            Subset::S4 => {
                let (category, row_split) = (field(2), field(3));
                if row_split != split {
                    continue;
                }
                if category.is_empty() || category.contains('/') || category.contains("..") {
                    return Err(csv_err(format!(
                        "line {line}: invalid category {category:?}"
                    )));
                }
                let d = dir.join("s4_data");
                let fdir = d
                    .join("visual_frames")
                    .join(split)
                    .join(&category)
                    .join(&vid);
                let mdir = d.join("gt_masks").join(split).join(&category).join(&vid);
                Clip {
                    subset,
                    frames: (1..=FRAMES_PER_CLIP)
                        .map(|i| fdir.join(format!("{vid}_{i}.png")))
                        .collect(),
                    masks: (1..=FRAMES_PER_CLIP)
                        .map(|i| mdir.join(format!("{vid}_{i}.png")))
                        .collect(),
                    wav: d
                        .join("audio_wav")
                        .join(split)
                        .join(&category)
                        .join(format!("{vid}.wav")),
                    vid,
                    category: Some(category),
                    split: split.to_string(),
                }
            }
            Subset::Ms3 => {
                if field(1) != split {
                    continue;
                }
                let d = dir.join("ms3_data");
                let fdir = d.join("visual_frames").join(&vid);
                let mdir = d.join("gt_masks").join(split).join(&vid);
                Clip {
                    subset,
                    frames: (1..=FRAMES_PER_CLIP)
                        .map(|i| fdir.join(format!("{vid}.mp4_{i}.png")))
                        .collect(),
                    masks: (1..=FRAMES_PER_CLIP)
                        .map(|i| mdir.join(format!("{vid}_{i}.png")))
                        .collect(),
                    wav: d.join("audio_wav").join(split).join(format!("{vid}.wav")),
                    vid,
                    category: None,
                    split: split.to_string(),
                }
            }
        };
        clips.push(clip);
    }
    Ok(clips)
}

/// Largest metadata CSV read, in bytes (AVSBench's are under 1 MB), checked before reading.
pub const MAX_CSV_BYTES: u64 = 64 << 20;
/// Most data records read from a metadata CSV (AVSBench S4 has 4 932).
pub const MAX_CSV_RECORDS: usize = 1_000_000;

/// The bytes of a metadata CSV: a regular file of at most [`MAX_CSV_BYTES`].
///
/// Errors: [`DatasetError::Csv`] naming the file and what is wrong.
fn read_csv_bytes(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let csv_err = |reason: String| DatasetError::Csv {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| csv_err(e.to_string()))?;
    if !meta.is_file() {
        return Err(csv_err("not a regular file".into()));
    }
    if meta.len() > MAX_CSV_BYTES {
        return Err(csv_err(format!(
            "{} bytes: a metadata CSV is at most {MAX_CSV_BYTES}",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CSV_BYTES).read_to_end(&mut bytes))
        .map_err(|e| csv_err(e.to_string()))?;
    Ok(bytes)
}

/// The record as text.
///
/// Errors: invalid UTF-8 is a [`DatasetError::Csv`] of `path` naming the record's line
/// (1-based, the header is line 1) and column.
fn utf8_record(
    rec: &csv::ByteRecord,
    line: u64,
    path: &Path,
) -> Result<csv::StringRecord, DatasetError> {
    csv::StringRecord::from_byte_record(rec.clone()).map_err(|e| DatasetError::Csv {
        path: path.to_path_buf(),
        reason: format!(
            "line {line}, column {}: invalid UTF-8 (byte {} of the field)",
            e.utf8_error().field() + 1,
            e.utf8_error().valid_up_to() + 1
        ),
    })
}

/// Reads a mask PNG and binarises it: `true` where any colour channel is > 0 (alpha ignored).
/// Returns `bool [H,W]`. A mask over [`DEFAULT_MAX_PIXELS`] is refused from its header
/// ([`DatasetError::MaskTooLarge`]).
pub fn load_mask(path: &Path) -> Result<Array2<bool>, DatasetError> {
    let rgb = read_rgb_limited(path, DEFAULT_MAX_PIXELS).map_err(|e| match e {
        ImageError::Read { path, source } => DatasetError::Mask { path, source },
        source => DatasetError::MaskTooLarge { source },
    })?;
    let (w, h) = rgb.dimensions();
    let mut m = Array2::from_elem((h as usize, w as usize), false);
    for (x, y, p) in rgb.enumerate_pixels() {
        m[[y as usize, x as usize]] = p.0.iter().any(|&c| c > 0);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_root(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("c3n-ds-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_s4_and_ms3_paths() {
        let root = tmp_root("paths");
        std::fs::create_dir_all(root.join("Single-source")).unwrap();
        std::fs::write(
            root.join("Single-source/s4_meta_data.csv"),
            "name,start,category,split\n-abc_1,0,dog_barking,test\nxyz,3,cat_meowing,train\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("Multi-sources")).unwrap();
        std::fs::write(
            root.join("Multi-sources/ms3_meta_data.csv"),
            "vid,split\nm1,test\nm2,val\n",
        )
        .unwrap();
        assert_eq!(
            available_subsets(&root, SubsetFilter::All).unwrap(),
            vec![Subset::S4, Subset::Ms3]
        );
        let s4 = load_clips(&root, Subset::S4, "test").unwrap();
        assert_eq!(s4.len(), 1);
        assert_eq!(
            s4[0].frames[4],
            root.join("Single-source/s4_data/visual_frames/test/dog_barking/-abc_1/-abc_1_5.png")
        );
        assert_eq!(
            s4[0].wav,
            root.join("Single-source/s4_data/audio_wav/test/dog_barking/-abc_1.wav")
        );
        assert_eq!(
            s4[0].masks[0],
            root.join("Single-source/s4_data/gt_masks/test/dog_barking/-abc_1/-abc_1_1.png")
        );
        let ms3 = load_clips(&root, Subset::Ms3, "test").unwrap();
        assert_eq!(ms3.len(), 1);
        assert_eq!(
            ms3[0].frames[0],
            root.join("Multi-sources/ms3_data/visual_frames/m1/m1.mp4_1.png")
        );
        assert_eq!(
            ms3[0].wav,
            root.join("Multi-sources/ms3_data/audio_wav/test/m1.wav")
        );
        assert_eq!(
            ms3[0].masks[2],
            root.join("Multi-sources/ms3_data/gt_masks/test/m1/m1_3.png")
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let root = tmp_root("errors");
        assert!(matches!(
            available_subsets(&root, SubsetFilter::All),
            Err(DatasetError::NoSubset { .. })
        ));
        std::fs::create_dir_all(root.join("Single-source")).unwrap();
        assert!(available_subsets(&root, SubsetFilter::Only(Subset::Ms3)).is_err());
        let e = load_clips(&root, Subset::S4, "test").unwrap_err();
        assert!(e.to_string().contains("s4_meta_data.csv"), "{e}");
        std::fs::write(
            root.join("Single-source/s4_meta_data.csv"),
            "a,b,c,d\nonly,two\n",
        )
        .unwrap();
        let e = load_clips(&root, Subset::S4, "test").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        // bad UTF-8 in the first data record is on line 2 (the header is line 1), field 3
        std::fs::write(
            root.join("Single-source/s4_meta_data.csv"),
            b"id,vid,category,split\nclip_a,x,d\xffog,test\n",
        )
        .unwrap();
        let e = load_clips(&root, Subset::S4, "test")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("s4_meta_data.csv: line 2, column 3: invalid UTF-8 (byte 2 of the field)"),
            "{e}"
        );
        // ... and on line 4 after a quoted field spanning lines 2-3
        std::fs::write(
            root.join("Single-source/s4_meta_data.csv"),
            b"id,vid,category,split\n\"a\nb\",x,dog,train\nclip_a,\xff,dog,test\n",
        )
        .unwrap();
        let e = load_clips(&root, Subset::S4, "test")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4, column 2: invalid UTF-8"), "{e}");
        // a CSV over the size limit is refused before it is read (a sparse file)
        let f = std::fs::File::create(root.join("Single-source/s4_meta_data.csv")).unwrap();
        f.set_len(MAX_CSV_BYTES + 1).unwrap();
        let e = load_clips(&root, Subset::S4, "test")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("67108865 bytes: a metadata CSV is at most 67108864"),
            "{e}"
        );
    }

    #[test]
    fn mask_binarisation() {
        let root = tmp_root("mask");
        let p = root.join("m.png");
        let mut img = ::image::GrayImage::new(3, 1);
        img.put_pixel(1, 0, ::image::Luma([1]));
        img.put_pixel(2, 0, ::image::Luma([255]));
        img.save(&p).unwrap();
        let m = load_mask(&p).unwrap();
        assert_eq!(m.as_slice().unwrap(), &[false, true, true]);
        assert!(matches!(
            load_mask(&root.join("none.png")),
            Err(DatasetError::Mask { .. })
        ));
    }
}
