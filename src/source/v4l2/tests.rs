use image::RgbImage;

use super::convert::{to_rgb, ConvertError};
use super::modes::{choose_mode, Mode, PixelFormat};
use crate::source::live::LiveOptions;

fn m(f: &[u8; 4], w: u32, h: u32, fps: f64) -> Mode {
    Mode {
        fourcc: *f,
        width: w,
        height: h,
        fps,
    }
}

fn webcam() -> Vec<Mode> {
    vec![
        m(b"YUYV", 640, 480, 30.0),
        m(b"YUYV", 1280, 720, 10.0),
        m(b"YUYV", 1920, 1080, 5.0),
        m(b"MJPG", 640, 480, 30.0),
        m(b"MJPG", 1280, 720, 30.0),
        m(b"MJPG", 1920, 1080, 30.0),
        m(b"H264", 1280, 720, 60.0),
    ]
}

#[test]
fn mode_choice_follows_jetson_utils() {
    let d = LiveOptions::default();
    // default 1280x720: size first, then the higher rate (MJPEG 30 beats YUYV 10)
    assert_eq!(
        choose_mode(&webcam(), &d).unwrap(),
        m(b"MJPG", 1280, 720, 30.0)
    );
    // a tie on size and rate prefers the uncompressed format
    let r = LiveOptions {
        width: Some(640),
        height: Some(480),
        ..d.clone()
    };
    assert_eq!(
        choose_mode(&webcam(), &r).unwrap(),
        m(b"YUYV", 640, 480, 30.0)
    );
    // --input-codec forces the format; --input-rate picks the closest rate
    let r = LiveOptions {
        codec: Some("yuyv".into()),
        ..d.clone()
    };
    assert_eq!(
        choose_mode(&webcam(), &r).unwrap(),
        m(b"YUYV", 1280, 720, 10.0)
    );
    let modes = vec![m(b"YUYV", 640, 480, 30.0), m(b"YUYV", 640, 480, 15.0)];
    let r = LiveOptions {
        rate_hz: Some(12.0),
        ..d.clone()
    };
    assert_eq!(choose_mode(&modes, &r).unwrap().fps, 15.0);
    // unconvertible formats only / unknown codec: clear errors
    let e = choose_mode(&[m(b"H264", 640, 480, 30.0)], &d)
        .unwrap_err()
        .to_string();
    assert!(e.contains("H264 640x480"), "{e}");
    assert!(choose_mode(
        &webcam(),
        &LiveOptions {
            codec: Some("vp9".into()),
            ..d
        }
    )
    .unwrap_err()
    .to_string()
    .contains("vp9"));
}

#[test]
fn yuyv_nv12_rgb_conversions() {
    // 4x2 frame, BT.601 limited range: Y=16 black, Y=235 white, (81,90,240) red
    let yuyv = [
        16, 128, 235, 128, 81, 90, 81, 240, // row 0: black white | red red
        235, 128, 235, 128, 16, 128, 16, 128, // row 1
    ];
    let img = to_rgb(PixelFormat::Yuyv, &yuyv, 4, 2, 8).unwrap();
    assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(img.get_pixel(1, 0).0, [255, 255, 255]);
    let red = img.get_pixel(2, 0).0;
    assert!(red[0] > 250 && red[1] < 5 && red[2] < 5, "{red:?}");
    assert_eq!(img.get_pixel(3, 1).0, [0, 0, 0]);
    // stride larger than the row
    let mut padded = Vec::new();
    for row in yuyv.chunks(8) {
        padded.extend_from_slice(row);
        padded.extend_from_slice(&[0; 4]);
    }
    assert_eq!(to_rgb(PixelFormat::Yuyv, &padded, 4, 2, 12).unwrap(), img);
    // NV12 of the same picture's luma with neutral chroma
    let nv12 = [16, 235, 16, 235, 235, 16, 235, 16, 128, 128, 128, 128];
    let g = to_rgb(PixelFormat::Nv12, &nv12, 4, 2, 4).unwrap();
    assert_eq!(g.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(g.get_pixel(0, 1).0, [255, 255, 255]);
    let rgb: Vec<u8> = (0..24).collect();
    assert_eq!(
        to_rgb(PixelFormat::Rgb24, &rgb, 4, 2, 12)
            .unwrap()
            .into_raw(),
        rgb
    );
    // short buffers are errors, not panics
    let e = to_rgb(PixelFormat::Yuyv, &yuyv[..10], 4, 2, 8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs 16"), "{e}");
    assert!(to_rgb(PixelFormat::Nv12, &nv12[..9], 4, 2, 4).is_err());
    assert!(to_rgb(PixelFormat::Mjpeg, b"not a jpeg", 4, 2, 0).is_err());
}

#[test]
fn mjpeg_frames_decode() {
    let mut src = RgbImage::new(32, 16);
    for (x, _, p) in src.enumerate_pixels_mut() {
        *p = image::Rgb([(x * 8) as u8, 100, 200]);
    }
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&src)
        .unwrap();
    let got = to_rgb(PixelFormat::Mjpeg, &jpeg, 32, 16, 0).unwrap();
    assert_eq!(got.dimensions(), (32, 16));
    let diff = got
        .as_raw()
        .iter()
        .zip(src.as_raw())
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
        .max()
        .unwrap();
    assert!(diff < 20, "max JPEG error {diff}");
    // a frame whose header claims more than the negotiated size is refused, naming both sizes
    let e = to_rgb(PixelFormat::Mjpeg, &jpeg, 16, 16, 0).unwrap_err();
    assert!(matches!(e, ConvertError::JpegTooLarge { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "MJPEG frame declares 32×16 pixels, more than the negotiated 16×16"
    );
    // a smaller one is decoded at its own size (as before)
    assert_eq!(
        to_rgb(PixelFormat::Mjpeg, &jpeg, 64, 16, 0)
            .unwrap()
            .dimensions(),
        (32, 16)
    );
}
