//! `file://out.mp4` (`.mkv`, …; cargo feature `ffmpeg`): the overlay pictures encoded as H.264
//! (MPEG-4 part 2 when the FFmpeg build has no H.264 encoder) through the system FFmpeg
//! libraries. Timestamps are the frames' source times (time base 1/1000 s), so the video plays at
//! the input's pace. Every frame is written (lossless delivery). Odd sizes lose their last
//! column/row (4:2:0 needs even sizes).

use std::path::{Path, PathBuf};

use ff::format::Pixel;
use ff::software::scaling;
use ff::{codec, encoder, frame, Packet, Rational};
use ffmpeg_next as ff;

use super::output::OutputThread;
use super::slot::Slot;
use super::DisplayError;
use crate::render::{Renderer, Scene};

fn err(path: &Path, what: &str, e: ff::Error) -> DisplayError {
    DisplayError::Output {
        what: format!("file://{}", path.display()),
        reason: format!("{what}: {e}"),
    }
}

/// Encoder state, made on the first frame (its size is the video's).
struct Encoding {
    encoder: encoder::Video,
    scaler: scaling::Context,
    stream_tb: Rational,
    rgb: frame::Video,
    yuv: frame::Video,
    last_pts: Option<i64>,
    /// Last frame interval, ms: each packet's duration (so the last frame is shown too).
    interval: i64,
}

const TB: Rational = Rational(1, 1000);

fn start(
    octx: &mut ff::format::context::Output,
    path: &Path,
    w: u32,
    h: u32,
) -> Result<Encoding, DisplayError> {
    let (ew, eh) = (w & !1, h & !1);
    if ew == 0 || eh == 0 {
        return Err(DisplayError::Output {
            what: format!("file://{}", path.display()),
            reason: format!("frame {w}x{h} is too small to encode"),
        });
    }
    let codec = encoder::find(codec::Id::H264)
        .or_else(|| encoder::find(codec::Id::MPEG4))
        .ok_or_else(|| DisplayError::Output {
            what: format!("file://{}", path.display()),
            reason: "this FFmpeg build has neither an H.264 nor an MPEG-4 encoder".into(),
        })?;
    let global = octx
        .format()
        .flags()
        .contains(ff::format::Flags::GLOBAL_HEADER);
    let mut ost = octx
        .add_stream(codec)
        .map_err(|e| err(path, "adding the video stream", e))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| err(path, "creating the encoder", e))?;
    enc.set_width(ew);
    enc.set_height(eh);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(TB);
    if global {
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let encoder = enc
        .open_as(codec)
        .map_err(|e| err(path, "opening the encoder", e))?;
    ost.set_parameters(&encoder);
    ost.set_time_base(TB);
    octx.write_header()
        .map_err(|e| err(path, "writing the header", e))?;
    let stream_tb = octx.stream(0).map_or(TB, |s| s.time_base());
    let scaler = scaling::Context::get(
        Pixel::RGB24,
        ew,
        eh,
        Pixel::YUV420P,
        ew,
        eh,
        scaling::Flags::BILINEAR,
    )
    .map_err(|e| err(path, "creating the colour converter", e))?;
    Ok(Encoding {
        encoder,
        scaler,
        stream_tb,
        rgb: frame::Video::new(Pixel::RGB24, ew, eh),
        yuv: frame::Video::new(Pixel::YUV420P, ew, eh),
        last_pts: None,
        interval: 40,
    })
}

fn drain(
    e: &mut Encoding,
    octx: &mut ff::format::context::Output,
    path: &Path,
) -> Result<(), DisplayError> {
    let mut pkt = Packet::empty();
    while e.encoder.receive_packet(&mut pkt).is_ok() {
        pkt.set_stream(0);
        pkt.set_duration(e.interval);
        pkt.rescale_ts(TB, e.stream_tb);
        pkt.write_interleaved(octx)
            .map_err(|er| err(path, "writing a packet", er))?;
    }
    Ok(())
}

/// Opens (creates) the video file now, so a bad path fails before the run; encodes on the
/// output's thread.
pub(super) fn open(path: &Path, renderer: Renderer) -> Result<OutputThread, DisplayError> {
    ff::init().map_err(|e| err(path, "initialising FFmpeg", e))?;
    let mut octx = ff::format::output(path).map_err(|e| err(path, "creating the file", e))?;
    let path: PathBuf = path.to_path_buf();
    let name = format!("file://{}", path.display());
    Ok(OutputThread::spawn_with(
        name,
        true,
        move |slot: &Slot<Scene>| {
            let mut enc: Option<Encoding> = None;
            while let Some(scene) = slot.take() {
                let img = renderer.render_image(&scene);
                let (w, h) = img.dimensions();
                let e = match &mut enc {
                    Some(e) => e,
                    None => enc.insert(start(&mut octx, &path, w, h)?),
                };
                if e.last_pts.is_some_and(|p| scene.pts_ms <= p) {
                    continue; // timestamps must increase
                }
                let (ew, eh) = (e.rgb.width(), e.rgb.height());
                if (w & !1, h & !1) != (ew, eh) {
                    return Err(DisplayError::Output {
                        what: format!("file://{}", path.display()),
                        reason: format!("frame size changed from {ew}x{eh} to {w}x{h}"),
                    });
                }
                let stride = e.rgb.stride(0);
                let data = e.rgb.data_mut(0);
                for y in 0..eh as usize {
                    let src = &img.as_raw()[y * w as usize * 3..][..ew as usize * 3];
                    data[y * stride..][..ew as usize * 3].copy_from_slice(src);
                }
                e.scaler
                    .run(&e.rgb, &mut e.yuv)
                    .map_err(|er| err(&path, "converting colours", er))?;
                if let Some(p) = e.last_pts {
                    e.interval = scene.pts_ms - p;
                }
                e.yuv.set_pts(Some(scene.pts_ms));
                e.last_pts = Some(scene.pts_ms);
                e.encoder
                    .send_frame(&e.yuv)
                    .map_err(|er| err(&path, "encoding", er))?;
                drain(e, &mut octx, &path)?;
            }
            if let Some(e) = &mut enc {
                e.encoder
                    .send_eof()
                    .map_err(|er| err(&path, "flushing the encoder", er))?;
                drain(e, &mut octx, &path)?;
                octx.write_trailer()
                    .map_err(|er| err(&path, "writing the trailer", er))?;
            }
            Ok(())
        },
    ))
}
