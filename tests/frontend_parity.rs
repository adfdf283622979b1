//! Log-mel front end vs the Python reference `models/c3n/model/frontend.py` (≤ 1e-4 max abs diff), on a
//! real recording written as 16 kHz WAV by `tests/fixtures/make_frontend_ref.py`.

mod common;

use c3n_edge::audio::read_wav_mono;
use c3n_edge::frontend::{FrontendParams, LogMel};
use ndarray::{Array2, Array4};
use ndarray_npy::read_npy;

#[test]
fn clip_patches_match_python_reference() {
    let test = "frontend_parity::clip_patches_match_python_reference";
    let Some(wav) = common::artifact(test, "violin_16k.wav") else {
        return;
    };
    let Some(ref_patches) = common::artifact(test, "violin_16k.patches.npy") else {
        return;
    };
    let Some(ref_logmel) = common::artifact(test, "violin_16k.logmel.npy") else {
        return;
    };

    let audio = read_wav_mono(&wav).expect("read wav");
    assert_eq!(
        audio.sample_rate, 16_000,
        "fixture must already be 16 kHz (no resampling on either side)"
    );
    let lm = LogMel::new(FrontendParams::default()).expect("default params");

    let want: Array4<f32> = read_npy(&ref_patches).expect("read patches npy");
    let got = lm.clip_patches(&audio.samples, 5, 1.0);
    assert_eq!(got.shape(), want.shape());
    let d = common::max_abs_diff(got.as_slice().unwrap(), want.as_slice().unwrap());
    eprintln!("clip_patches max abs diff vs Python: {d:e}");
    assert!(d <= 1e-4, "clip_patches differ by {d}");

    let want: Array2<f32> = read_npy(&ref_logmel).expect("read logmel npy");
    let got = lm.log_mel(&audio.samples);
    assert_eq!(got.shape(), want.shape());
    let d = common::max_abs_diff(got.as_slice().unwrap(), want.as_slice().unwrap());
    eprintln!("log_mel max abs diff vs Python: {d:e}");
    assert!(d <= 1e-4, "log_mel differs by {d}");
}

/// The VGGish front end (`ln(mel + 0.01)`, examples back to back from the clip start;
/// `frontend.VGGISH` in Python) on the same recording: 3 examples of audio, 2 of zero padding.
#[test]
fn vggish_patches_match_python_reference() {
    use c3n_edge::frontend::PatchPlacement;
    let test = "frontend_parity::vggish_patches_match_python_reference";
    let Some(wav) = common::artifact(test, "violin_16k.wav") else {
        return;
    };
    let Some(reference) = common::artifact(test, "violin_16k.vggish_patches.npy") else {
        return;
    };
    let audio = read_wav_mono(&wav).expect("read wav");
    let lm = LogMel::new(FrontendParams {
        log_offset: 0.01,
        patch_placement: PatchPlacement::Examples,
        ..Default::default()
    })
    .expect("VGGish params");
    let want: Array4<f32> = read_npy(&reference).expect("read vggish patches npy");
    let got = lm.clip_patches(&audio.samples, 5, 1.0);
    assert_eq!(got.shape(), want.shape());
    let d = common::max_abs_diff(got.as_slice().unwrap(), want.as_slice().unwrap());
    eprintln!("VGGish clip_patches max abs diff vs Python: {d:e}");
    assert!(d <= 1e-4, "VGGish clip_patches differ by {d}");
}
