//! WAV (RIFF/WAVE) parsing and decoding of bytes already in memory, for [`crate::audio`].
//!
//! Written for outside files: every size in the header is checked against the bytes actually
//! present (nothing is allocated from a header field), and each problem has its own message
//! (empty file, not RIFF/WAVE, a chunk that runs past the end of the file, no `fmt `/`data`
//! chunk, a rate or layout this runtime cannot use). Recoverable oddities are not errors but
//! [`WavNote`]s the caller reports: a `data` chunk cut short (a recording that was interrupted),
//! a trailing partial frame, NaN or infinite float samples (decoded as 0).
//!
//! Supported: PCM (format 1) with 8 (unsigned), 16, 24 or 32-bit integer samples, IEEE float
//! (format 3) with 32 or 64-bit samples, and `WAVE_FORMAT_EXTENSIBLE` (0xFFFE) wrapping either.
//! Integer PCM is scaled by `2^(bits−1)` (int16 ÷ 32768), float taken as is; channels are
//! averaged to mono.

use std::fmt;

/// Lowest sample rate accepted, in Hz (below any real recording format: 8 kHz telephony is
/// the lowest common one).
pub const MIN_SAMPLE_RATE: u32 = 4_000;
/// Highest sample rate accepted, in Hz (DXD / 768 kHz studio formats).
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// Most channels accepted.
pub const MAX_CHANNELS: u16 = 64;
/// Most sample frames decoded from one file: 2²⁸ (268 million: 93 min at 48 kHz, 4.6 h at
/// 16 kHz), so the decoded mono samples take at most 2 GiB; checked from the data chunk's size
/// before the samples are allocated ([`WavError::TooLong`]).
pub const MAX_FRAMES: u64 = 1 << 28;

/// What a WAV file's header says about its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Channels (1..=[`MAX_CHANNELS`]).
    pub channels: u16,
    /// Sample rate in Hz ([`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`]).
    pub sample_rate: u32,
    /// Bytes per sample of one channel (1–4 for PCM, 4 or 8 for float).
    pub bytes_per_sample: u16,
    /// Float (true) or integer PCM (false).
    pub float: bool,
}

/// A recoverable problem found while decoding; the samples are usable.
#[derive(Debug, Clone, PartialEq)]
pub enum WavNote {
    /// The `data` chunk declares more bytes than the file holds (an interrupted recording, or a
    /// streaming writer's placeholder size): the bytes present were decoded.
    DataCutShort {
        /// Bytes the header declares.
        declared: u64,
        /// Bytes present.
        present: u64,
    },
    /// Bytes after the last whole frame were ignored.
    PartialFrame {
        /// Ignored bytes.
        bytes: u64,
    },
    /// Float samples that are NaN or ±infinite, decoded as 0 (silence).
    NonFinite {
        /// How many samples (over all channels).
        count: u64,
        /// Index of the first affected frame.
        first_frame: u64,
    },
}

impl fmt::Display for WavNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WavNote::DataCutShort { declared, present } => write!(
                f,
                "the data chunk declares {declared} bytes but the file holds only {present} \
                 (cut short?): decoding the {present} bytes present"
            ),
            WavNote::PartialFrame { bytes } => {
                write!(f, "{bytes} bytes after the last whole sample frame ignored")
            }
            WavNote::NonFinite { count, first_frame } => write!(
                f,
                "{count} samples are NaN or infinite (first in frame {first_frame}); \
                 they are analysed as silence"
            ),
        }
    }
}

/// Why a WAV file cannot be used. The messages say what is wrong with the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// Zero bytes.
    #[error("the file is empty (0 bytes)")]
    Empty,
    /// Shorter than the 12-byte RIFF header.
    #[error("only {0} bytes: too short for a RIFF/WAVE header (12 bytes)")]
    TooShort(usize),
    /// Does not start with `RIFF....WAVE`.
    #[error("not a RIFF/WAVE file (it starts with {found:?}{hint})")]
    NotWave {
        /// The first bytes, escaped.
        found: String,
        /// An extra hint for known look-alikes (RF64, RIFX, Ogg, MP3, ...).
        hint: &'static str,
    },
    /// A chunk header or body runs past the end of the file before the needed chunks were read.
    #[error(
        "truncated: the {chunk:?} chunk at byte {offset} declares {declared} bytes but only \
         {present} follow"
    )]
    ChunkPastEnd {
        /// Chunk id, escaped.
        chunk: String,
        /// Offset of the chunk header.
        offset: u64,
        /// Declared body size.
        declared: u64,
        /// Bytes present after the chunk header.
        present: u64,
    },
    /// The file ends inside a chunk header, before `fmt ` and `data` were both found.
    #[error("truncated: the file ends at byte {0} before the {1} chunk")]
    EndsBefore(u64, &'static str),
    /// The `fmt ` chunk is shorter than 16 bytes.
    #[error("the fmt chunk is {0} bytes long (a WAV format needs at least 16)")]
    FmtTooShort(u32),
    /// Two `fmt ` chunks, or `data` before `fmt `.
    #[error("the data chunk comes before any fmt chunk")]
    DataBeforeFmt,
    /// A header value this runtime cannot use.
    #[error("{0}")]
    Unsupported(String),
    /// More sample frames than [`MAX_FRAMES`].
    #[error(
        "{frames} sample frames ({:.0} s at {rate} Hz): more than the {max} a WAV file may \
         have; split it into shorter files",
        *frames as f64 / f64::from(*rate)
    )]
    TooLong {
        /// Sample frames in the data chunk.
        frames: u64,
        /// Sample rate, Hz.
        rate: u32,
        /// [`MAX_FRAMES`].
        max: u64,
    },
}

/// Decoded mono samples and what was noticed on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The header's format.
    pub format: WavFormat,
    /// Mono samples (mean over the channels), full scale ±1, all finite.
    pub samples: Vec<f64>,
    /// Recoverable problems, in the order found.
    pub notes: Vec<WavNote>,
}

fn escaped(b: &[u8]) -> String {
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses the `fmt ` chunk body (at least 16 bytes).
fn parse_fmt(body: &[u8]) -> Result<WavFormat, WavError> {
    let unsupported = |s: String| Err(WavError::Unsupported(s));
    let mut tag = u16_at(body, 0);
    let channels = u16_at(body, 2);
    let sample_rate = u32_at(body, 4);
    let block_align = u16_at(body, 12);
    let bits = u16_at(body, 14);
    if tag == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: cbSize, valid bits, channel mask, then the sub-format GUID
        // whose first two bytes are the real format tag
        if body.len() < 40 {
            return unsupported(format!(
                "WAVE_FORMAT_EXTENSIBLE with a {}-byte fmt chunk (40 needed)",
                body.len()
            ));
        }
        tag = u16_at(body, 24);
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return unsupported(format!(
            "{channels} channels (expected 1 to {MAX_CHANNELS})"
        ));
    }
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return unsupported(format!(
            "sample rate {sample_rate} Hz in the header (expected {MIN_SAMPLE_RATE} to \
             {MAX_SAMPLE_RATE} Hz)"
        ));
    }
    let float = match (tag, bits) {
        (1, 8 | 16 | 24 | 32) => false,
        (3, 32 | 64) => true,
        (1, b) => return unsupported(format!("{b}-bit integer PCM (8, 16, 24 or 32 bits)")),
        (3, b) => return unsupported(format!("{b}-bit float samples (32 or 64 bits)")),
        (t, _) => {
            return unsupported(format!(
                "format tag {t:#06x} (compressed audio?); only PCM (1) and IEEE float (3) \
                 WAV files can be read: convert it, e.g. ffmpeg -i IN -c:a pcm_s16le OUT.wav"
            ))
        }
    };
    let bytes_per_sample = bits / 8;
    let want_align = u32::from(channels) * u32::from(bytes_per_sample);
    if u32::from(block_align) != want_align {
        return unsupported(format!(
            "block align {block_align} bytes in the header, but {channels} channels of \
             {bits}-bit samples take {want_align}"
        ));
    }
    Ok(WavFormat {
        channels,
        sample_rate,
        bytes_per_sample,
        float,
    })
}

/// Finds the format and the data bytes of a RIFF/WAVE file; notes a cut-short `data` chunk.
pub fn parse(bytes: &[u8]) -> Result<(WavFormat, &[u8], Vec<WavNote>), WavError> {
    if bytes.is_empty() {
        return Err(WavError::Empty);
    }
    if bytes.len() < 12 {
        return Err(WavError::TooShort(bytes.len()));
    }
    if &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        let hint = match &bytes[0..4] {
            b"RF64" => ": RF64 (64-bit WAV) is not supported",
            b"RIFX" => ": big-endian RIFX is not supported",
            b"OggS" => ": an Ogg file",
            b"fLaC" => ": a FLAC file",
            [b'I', b'D', b'3', _] | [0xFF, 0xFB | 0xF3 | 0xF2, _, _] => ": an MP3 file",
            _ => "",
        };
        return Err(WavError::NotWave {
            found: escaped(&bytes[0..12]),
            hint,
        });
    }
    let mut notes = Vec::new();
    let mut format = None;
    let mut pos = 12usize;
    loop {
        let Some(header) = bytes.get(pos..pos + 8) else {
            let missing = if format.is_none() { "fmt" } else { "data" };
            return Err(WavError::EndsBefore(pos.min(bytes.len()) as u64, missing));
        };
        let id = &header[0..4];
        let declared = u32_at(header, 4);
        let body_start = pos + 8;
        let present = bytes.len() - body_start;
        let body_len = declared as usize;
        if id == b"data" {
            let Some(format) = format else {
                return Err(WavError::DataBeforeFmt);
            };
            let data = if body_len <= present {
                &bytes[body_start..body_start + body_len]
            } else {
                notes.push(WavNote::DataCutShort {
                    declared: u64::from(declared),
                    present: present as u64,
                });
                &bytes[body_start..]
            };
            return Ok((format, data, notes));
        }
        if body_len > present {
            return Err(WavError::ChunkPastEnd {
                chunk: escaped(id),
                offset: pos as u64,
                declared: u64::from(declared),
                present: present as u64,
            });
        }
        let body = &bytes[body_start..body_start + body_len];
        if id == b"fmt " {
            if body.len() < 16 {
                return Err(WavError::FmtTooShort(declared));
            }
            format = Some(parse_fmt(body)?);
        }
        // chunks are padded to an even size
        pos = body_start + body_len + (body_len & 1);
    }
}

/// Decodes one sample (channel value) at the start of `b` to ±1 full scale.
fn sample(b: &[u8], format: &WavFormat) -> f64 {
    match (format.float, format.bytes_per_sample) {
        (true, 4) => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        (true, _) => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        (false, 1) => (f64::from(b[0]) - 128.0) / 128.0,
        (false, 2) => f64::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0,
        (false, 3) => f64::from(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) / 8_388_608.0,
        (false, _) => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])) / 2_147_483_648.0,
    }
}

/// Parses and decodes a whole WAV file held in `bytes`: mono samples (allocation bounded by
/// `bytes.len()`), NaN/infinite samples replaced by 0, and the notes.
/// At most [`MAX_FRAMES`] sample frames ([`WavError::TooLong`]).
pub fn decode(bytes: &[u8]) -> Result<Decoded, WavError> {
    decode_at_most(bytes, MAX_FRAMES)
}

fn decode_at_most(bytes: &[u8], max_frames: u64) -> Result<Decoded, WavError> {
    let (format, data, mut notes) = parse(bytes)?;
    let frame_bytes = usize::from(format.channels) * usize::from(format.bytes_per_sample);
    let frames = data.chunks_exact(frame_bytes);
    let rest = frames.remainder().len();
    let count = (data.len() / frame_bytes) as u64;
    if count > max_frames {
        return Err(WavError::TooLong {
            frames: count,
            rate: format.sample_rate,
            max: max_frames,
        });
    }
    let mut samples = Vec::with_capacity(data.len() / frame_bytes);
    let (mut bad, mut first_bad) = (0u64, None);
    let per = usize::from(format.bytes_per_sample);
    let channels = f64::from(format.channels);
    for (k, frame) in frames.enumerate() {
        let mut sum = 0.0;
        for ch in frame.chunks_exact(per) {
            let v = sample(ch, &format);
            if v.is_finite() {
                sum += v;
            } else {
                bad += 1;
                first_bad.get_or_insert(k as u64);
            }
        }
        samples.push(sum / channels);
    }
    if rest > 0 {
        notes.push(WavNote::PartialFrame { bytes: rest as u64 });
    }
    if let Some(first_frame) = first_bad {
        notes.push(WavNote::NonFinite {
            count: bad,
            first_frame,
        });
    }
    Ok(Decoded {
        format,
        samples,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use crate::audio::wav::*;

    /// A WAV file: `fmt` fields, then a data chunk declaring `declared` bytes holding `data`.
    fn wav(tag: u16, channels: u16, rate: u32, bits: u16, declared: u32, data: &[u8]) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        let align = channels * (bits / 8);
        v.extend(tag.to_le_bytes());
        v.extend(channels.to_le_bytes());
        v.extend(rate.to_le_bytes());
        v.extend((rate * u32::from(align)).to_le_bytes());
        v.extend(align.to_le_bytes());
        v.extend(bits.to_le_bytes());
        v.extend(b"data");
        v.extend(declared.to_le_bytes());
        v.extend(data);
        v
    }

    #[test]
    fn frame_count_is_limited_before_decoding() {
        // 4 stereo 16-bit frames: allowed at a limit of 4, refused at 3 with the numbers
        let w = wav(1, 2, 8000, 16, 16, &[0; 16]);
        assert_eq!(decode_at_most(&w, 4).unwrap().samples.len(), 4);
        let e = decode_at_most(&w, 3).unwrap_err();
        assert_eq!(
            e,
            WavError::TooLong {
                frames: 4,
                rate: 8000,
                max: 3
            }
        );
        assert!(e
            .to_string()
            .starts_with("4 sample frames (0 s at 8000 Hz): more than the 3"));
        assert_eq!(MAX_FRAMES, 268_435_456);
    }

    #[test]
    fn decodes_every_format_to_full_scale() {
        // 8-bit unsigned: 0 -> -1, 128 -> 0, 192 -> 0.5
        let d = decode(&wav(1, 1, 8000, 8, 3, &[0, 128, 192])).unwrap();
        assert_eq!(d.samples, vec![-1.0, 0.0, 0.5]);
        // 24-bit signed: -2^23 -> -1, 2^22 -> 0.5
        let d = decode(&wav(1, 1, 8000, 24, 6, &[0, 0, 0x80, 0, 0, 0x40])).unwrap();
        assert_eq!(d.samples, vec![-1.0, 0.5]);
        // 64-bit float stereo down-mixed: (0.5 + -0.25) / 2
        let mut data = 0.5f64.to_le_bytes().to_vec();
        data.extend((-0.25f64).to_le_bytes());
        let d = decode(&wav(3, 2, 48_000, 64, 16, &data)).unwrap();
        assert_eq!(d.samples, vec![0.125]);
        assert!(d.notes.is_empty());
    }

    #[test]
    fn header_problems_have_their_own_messages() {
        assert_eq!(decode(b""), Err(WavError::Empty));
        assert_eq!(decode(b"RIFF"), Err(WavError::TooShort(4)));
        let e = decode(b"OggS\0\0\0\0\0\0\0\0\0\0").unwrap_err().to_string();
        assert!(e.contains("not a RIFF/WAVE") && e.contains("Ogg"), "{e}");
        // the header ends before the data chunk
        let full = wav(1, 1, 16_000, 16, 2, &[1, 0]);
        assert_eq!(decode(&full[..36]), Err(WavError::EndsBefore(36, "data")));
        // an over-long fmt chunk
        let mut long = full.clone();
        long[16..20].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let e = decode(&long).unwrap_err();
        assert!(
            matches!(
                e,
                WavError::ChunkPastEnd {
                    declared: 0xFFFF_FFF0,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = decode(&wav(1, 1, 2_147_483_647, 16, 2, &[0, 0]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sample rate 2147483647 Hz"), "{e}");
        let e = decode(&wav(0x55, 1, 16_000, 16, 2, &[0, 0]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("format tag 0x0055"), "{e}");
        let e = decode(&wav(1, 0, 16_000, 16, 2, &[0, 0]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("0 channels"), "{e}");
    }

    #[test]
    fn cut_short_and_non_finite_data_are_notes() {
        // declares 4 GiB, holds 5 bytes: 2 frames decoded, the odd byte noted
        let d = decode(&wav(1, 1, 16_000, 16, u32::MAX, &[0, 0x40, 0, 0xC0, 7])).unwrap();
        assert_eq!(d.samples, vec![0.5, -0.5]);
        assert_eq!(
            d.notes,
            vec![
                WavNote::DataCutShort {
                    declared: u64::from(u32::MAX),
                    present: 5
                },
                WavNote::PartialFrame { bytes: 1 }
            ]
        );
        let mut data = Vec::new();
        for v in [0.25f32, f32::NAN, f32::INFINITY, 0.5] {
            data.extend(v.to_le_bytes());
        }
        let d = decode(&wav(3, 1, 16_000, 32, 16, &data)).unwrap();
        assert_eq!(d.samples, vec![0.25, 0.0, 0.0, 0.5]);
        assert_eq!(
            d.notes,
            vec![WavNote::NonFinite {
                count: 2,
                first_frame: 1
            }]
        );
    }
}
