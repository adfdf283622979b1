use super::clock::Rebase;
use super::options::{parse_alpha, parse_input_rate, Input, OptionsError, RunOptions};
use crate::source::VideoOptions;
use crate::uri::InputUri;

#[test]
fn mixed_clocks_rebase_the_live_side() {
    // live camera + file audio: re-zeroed at the first frame, intervals kept
    let mut v = Rebase::video(true);
    assert_eq!(v.map(86_400_123, 0), 0);
    assert_eq!(v.map(86_400_163, 0), 40);
    // live microphone + file video: by sample count, whatever the device's timestamps
    let mut a = Rebase::audio(true, 16_000);
    assert_eq!(a.map(5_000_000, 320), 0);
    assert_eq!(a.map(5_000_000, 320), 20);
    assert_eq!(a.map(4_000_000, 160), 40);
    assert_eq!(a.map(9_000_000, 320), 50);
    // both live (or both files): untouched
    let mut off = Rebase::audio(false, 16_000);
    assert_eq!(off.map(5_000_000, 320), 5_000_000);
    assert_eq!(Rebase::video(false).map(7, 0), 7);
}

#[test]
fn flag_values_are_checked_with_their_messages() {
    assert_eq!(parse_input_rate(" 25 ").unwrap(), 25.0);
    assert_eq!(parse_input_rate("0.01").unwrap(), 0.01);
    for bad in ["0", "-1", "1e-9", "1e6", "nan", "inf"] {
        let e = parse_input_rate(bad).unwrap_err();
        assert!(matches!(e, OptionsError::Rate(_)), "{bad}: {e:?}");
    }
    assert_eq!(
        parse_input_rate("0").unwrap_err().to_string(),
        "0 fps is outside 0.01 to 1000 fps"
    );
    assert!(parse_input_rate("abc")
        .unwrap_err()
        .to_string()
        .starts_with("not a number: "));
    assert_eq!(parse_alpha("0.5").unwrap(), 0.5);
    assert_eq!(
        parse_alpha("2").unwrap_err().to_string(),
        "2 is outside 0 to 1"
    );
    assert!(matches!(
        parse_alpha("nan").unwrap_err(),
        OptionsError::Alpha { .. }
    ));
}

#[test]
fn run_options_are_validated_in_one_place() {
    let ok = RunOptions::default();
    ok.validate().unwrap();
    let e = RunOptions {
        queue: 0,
        ..ok.clone()
    }
    .validate()
    .unwrap_err();
    assert!(matches!(e, OptionsError::Queue), "{e:?}");
    // the image-sequence rate of a library caller, not only the flag's
    let mut slow = RunOptions {
        input: Input::Uris {
            video: InputUri::ImageSequence {
                pattern: "f/%05d.png".into(),
            },
            audio: None,
            options: VideoOptions {
                rate_hz: 0.0,
                ..VideoOptions::default()
            },
        },
        ..ok.clone()
    };
    assert!(matches!(slow.validate(), Err(OptionsError::Rate(_))));
    if let Input::Uris { options, .. } = &mut slow.input {
        options.rate_hz = 1.0;
        options.live.rate_hz = Some(-1.0);
    }
    assert!(matches!(slow.validate(), Err(OptionsError::Rate(_))));
    let mut cam = ok.clone();
    cam.events.camera = "front door".into();
    assert!(matches!(cam.validate(), Err(OptionsError::Events(_))));
    let mut post = ok.clone();
    post.post.threshold = 2.0;
    assert!(matches!(post.validate(), Err(OptionsError::Post(_))));
    let mut labels = ok;
    labels.events.labels = vec!["dragon".into()];
    let known = ["person".to_string(), "dog".to_string()];
    let e = labels.check_labels(&known).unwrap_err();
    assert!(e.to_string().contains("dragon"), "{e}");
    labels.events.labels = vec!["dog".into()];
    labels.check_labels(&known).unwrap();
}
