//! The pipeline's readers: a source read on its own thread into a bounded queue, and the audio
//! pulled from its queue until the sync stage's buffer covers a time.

use std::time::{Duration, Instant};

use super::clock::Rebase;
use super::PipelineError;
use crate::source::{AudioBlock, SourceError};
use crate::sync::AudioBuffer;
use crate::util::queue::{queue, FullPolicy, QueueRx};

/// An item read by [`spawn_reader`] with the time the read took.
pub(super) type Read<T> = Result<(T, Duration), SourceError>;

/// Reads a source on its own thread into a bounded queue; ends when the receiver is gone.
pub(super) fn spawn_reader<'s, T: Send + 's>(
    s: &'s std::thread::Scope<'s, '_>,
    cap: usize,
    policy: FullPolicy<Read<T>>,
    mut next: impl FnMut() -> Result<Option<T>, SourceError> + Send + 's,
) -> QueueRx<Read<T>> {
    let (tx, rx) = queue(cap, policy);
    s.spawn(move || loop {
        let t = Instant::now();
        let item = match next() {
            Ok(Some(x)) => Ok((x, t.elapsed())),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        let stop = item.is_err();
        if tx.send(item).is_err() || stop {
            return;
        }
    });
    rx
}

/// Pulls audio blocks until the buffer covers `until_ms` (or the audio ends).
pub(super) fn fill_audio(
    abuf: &mut AudioBuffer,
    blocks: &QueueRx<Read<AudioBlock>>,
    offset_ms: i64,
    clock: &mut Rebase,
    until_ms: f64,
) -> Result<(), PipelineError> {
    while !abuf.covers(until_ms) {
        match blocks.recv() {
            Ok(Ok((b, _))) => {
                abuf.push(clock.map(b.pts_ms, b.samples.len()) + offset_ms, &b.samples)
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => abuf.ended = true,
        }
    }
    Ok(())
}
