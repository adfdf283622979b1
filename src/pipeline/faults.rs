//! Faults in the middle of an input (`--on-bad-frame`, `[input] on_bad_frame`).
//!
//! A *bad frame* is one the video source could not deliver but can go past
//! ([`SourceError::is_bad_frame`]: a file that cannot be decoded or is truncated, a frame whose
//! size differs from the first, a camera buffer that does not convert or that the driver
//! flagged). An *audio fault* is any read error of the audio source after it was opened.
//!
//! * [`OnBadFrame::Stop`]: the error ends the run after the window in progress (the good frames
//!   before it reach the outputs with their events), as before `--on-bad-frame` existed.
//! * [`OnBadFrame::Skip`]: a bad frame is left out and counted (`RunState::frames_bad`); its
//!   slot is filled the way a dropped frame's is (the previous frame repeats,
//!   [`crate::sync::FrameSlotter`]). A burst of audio faults is counted as one gap
//!   (`RunState::audio_gaps`) and the source is read on; the span it lost is filled with silence ([`crate::sync::AudioBuffer`]).
//!   Either is logged once per burst: the first fault with its name and reason, and a summary
//!   when the input is good again (or ends).
//!
//! Default ([`OnBadFrame::default_for`]): `skip` for live inputs and looped files, `stop` for a
//! single pass over a file.

use std::sync::Arc;

use tracing::{debug, warn};

use crate::control::RunControl;
use crate::source::{AudioBlock, AudioSource, SourceError, VideoFrame, VideoSource};

/// Audio read errors in a row after which the audio input is taken as ended (the rest of the
/// run is analysed as silence) under [`OnBadFrame::Skip`].
pub const MAX_AUDIO_ERRORS_IN_A_ROW: u32 = 16;

/// What a bad frame or an audio fault does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadFrame {
    /// End the run with the error, after the window in progress.
    Stop,
    /// Leave the frame out (or fill the audio with silence), count it and go on.
    Skip,
}

impl OnBadFrame {
    /// The policy when none is set: [`Skip`](Self::Skip) for a live input (`v4l2://`,
    /// `alsa://`) or a looped file (`input_loop` ≠ 0), [`Stop`](Self::Stop) for a single pass.
    pub fn default_for(live: bool, input_loop: i64) -> Self {
        if live || input_loop != 0 {
            Self::Skip
        } else {
            Self::Stop
        }
    }
}

/// `--on-bad-frame` is neither `stop` nor `skip`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected stop or skip")]
pub struct BadPolicy(pub String);

impl std::str::FromStr for OnBadFrame {
    type Err = BadPolicy;
    fn from_str(s: &str) -> Result<Self, BadPolicy> {
        match s.trim() {
            "stop" => Ok(Self::Stop),
            "skip" => Ok(Self::Skip),
            _ => Err(BadPolicy(s.to_string())),
        }
    }
}

impl std::fmt::Display for OnBadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Stop => "stop",
            Self::Skip => "skip",
        })
    }
}

/// Logs one burst of consecutive faults: the first at `warn`, the rest at `debug`, a summary
/// when it ends.
#[derive(Debug)]
struct Burst {
    input: String,
    /// The fault, singular with its article ("a bad frame").
    one: &'static str,
    /// Its noun for counts ("bad frame").
    what: &'static str,
    run: u64,
    total: u64,
}

impl Burst {
    fn new(input: String, one: &'static str, what: &'static str) -> Self {
        Self {
            input,
            one,
            what,
            run: 0,
            total: 0,
        }
    }

    fn fault(&mut self, e: &SourceError) {
        self.run += 1;
        self.total += 1;
        if self.run == 1 {
            warn!("skipping {} (--on-bad-frame skip): {e}", self.one);
        } else {
            debug!("{e}; skipped");
        }
    }

    /// The input delivered again (`ended`: it ended instead).
    fn end(&mut self, ended: bool) {
        if self.run == 0 {
            return;
        }
        let n = self.run;
        self.run = 0;
        let s = if n == 1 { "" } else { "s" };
        warn!(
            "input {}: {n} {}{s} in a row skipped{} ({} in this pass)",
            self.input,
            self.what,
            if ended {
                " up to its end"
            } else {
                "; good again"
            },
            self.total
        );
    }
}

/// A video source with the fault policy applied: under [`OnBadFrame::Skip`] bad frames are
/// counted in [`RunControl::add_bad_frame`] and left out.
pub struct FrameFaults<'a> {
    source: &'a mut dyn VideoSource,
    policy: OnBadFrame,
    control: Arc<RunControl>,
    burst: Burst,
}

impl<'a> FrameFaults<'a> {
    /// Wraps `source` (its name is used in the summaries).
    pub fn new(
        source: &'a mut dyn VideoSource,
        policy: OnBadFrame,
        control: Arc<RunControl>,
    ) -> Self {
        let name = source.name();
        Self {
            source,
            policy,
            control,
            burst: Burst::new(name, "a bad frame", "bad frame"),
        }
    }

    /// The next good frame; `Err` for a bad frame under [`OnBadFrame::Stop`] and for any other
    /// error.
    pub fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        loop {
            match self.source.next_frame() {
                Err(e) if self.policy == OnBadFrame::Skip && e.is_bad_frame() => {
                    self.control.add_bad_frame();
                    self.burst.fault(&e);
                }
                Err(e) => return Err(e),
                Ok(f) => {
                    self.burst.end(f.is_none());
                    return Ok(f);
                }
            }
        }
    }
}

/// An audio source with the fault policy applied: under [`OnBadFrame::Skip`] a burst of read
/// errors is counted as one gap in [`RunControl::add_audio_gap`] and the source is read on (the next block's
/// timestamp says how much is missing; [`crate::sync::AudioBuffer::push`] fills it with
/// silence); after [`MAX_AUDIO_ERRORS_IN_A_ROW`] the audio is taken as ended.
pub struct AudioFaults<'a> {
    source: &'a mut dyn AudioSource,
    policy: OnBadFrame,
    control: Arc<RunControl>,
    burst: Burst,
}

impl<'a> AudioFaults<'a> {
    /// Wraps `source`; `name` names the audio input in the summaries.
    pub fn new(
        source: &'a mut dyn AudioSource,
        name: String,
        policy: OnBadFrame,
        control: Arc<RunControl>,
    ) -> Self {
        Self {
            source,
            policy,
            control,
            burst: Burst::new(name, "an audio read error", "audio read error"),
        }
    }

    /// The next block; `Err` for a fault under [`OnBadFrame::Stop`].
    pub fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError> {
        loop {
            match self.source.next_block() {
                Err(e) if self.policy == OnBadFrame::Skip => {
                    if self.burst.run == 0 {
                        self.control.add_audio_gap(); // one gap per burst of errors
                    }
                    self.burst.fault(&e);
                    if self.burst.run >= u64::from(MAX_AUDIO_ERRORS_IN_A_ROW) {
                        warn!(
                            "input {}: {MAX_AUDIO_ERRORS_IN_A_ROW} audio read errors in a row; \
                             the audio ends here (the rest is analysed as silence)",
                            self.burst.input
                        );
                        self.burst.end(true);
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
                Ok(b) => {
                    self.burst.end(b.is_none());
                    return Ok(b);
                }
            }
        }
    }
}
