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

/// A stand-in audio source at 1 kHz: the given blocks and errors in turn, then the end.
struct Scripted(std::collections::VecDeque<Option<crate::source::AudioBlock>>);

impl crate::source::AudioSource for Scripted {
    fn sample_rate(&self) -> u32 {
        1000
    }
    fn next_block(
        &mut self,
    ) -> Result<Option<crate::source::AudioBlock>, crate::source::SourceError> {
        match self.0.pop_front() {
            Some(Some(b)) => Ok(Some(b)),
            Some(None) => Err(crate::source::SourceError::Device {
                uri: "alsa://mic".into(),
                reason: "read error (EIO)".into(),
            }),
            None => Ok(None),
        }
    }
}

fn block(pts_ms: i64, value: f64) -> Option<crate::source::AudioBlock> {
    Some(crate::source::AudioBlock {
        pts_ms,
        samples: vec![value; 100],
    })
}

#[test]
fn audio_faults_stop_or_become_counted_silent_gaps() {
    use super::faults::{AudioFaults, OnBadFrame, MAX_AUDIO_ERRORS_IN_A_ROW};
    use crate::control::RunControl;
    use std::sync::Arc;
    let script = || {
        Scripted(
            vec![
                block(0, 0.5),
                None,
                None,
                block(500, 0.25),
                None,
                block(700, 0.1),
            ]
            .into(),
        )
    };

    // stop: the first error is returned as it is
    let control = Arc::new(RunControl::default());
    let mut src = script();
    let mut a = AudioFaults::new(
        &mut src,
        "alsa://mic".into(),
        OnBadFrame::Stop,
        control.clone(),
    );
    assert_eq!(a.next_block().unwrap().unwrap().pts_ms, 0);
    let e = a.next_block().unwrap_err().to_string();
    assert_eq!(e, "input alsa://mic: read error (EIO)");
    assert_eq!(control.audio_gaps(), 0);

    // skip: two gaps (bursts of 2 and 1 errors), the blocks after them delivered
    let control = Arc::new(RunControl::default());
    let mut src = script();
    let mut a = AudioFaults::new(
        &mut src,
        "alsa://mic".into(),
        OnBadFrame::Skip,
        control.clone(),
    );
    let mut buf = crate::sync::AudioBuffer::new(1000);
    let mut pts = vec![];
    while let Some(b) = a.next_block().unwrap() {
        pts.push(b.pts_ms);
        buf.push(b.pts_ms, &b.samples);
    }
    assert_eq!(pts, vec![0, 500, 700]);
    assert_eq!(control.audio_gaps(), 2);
    // the lost spans are silence, the audio around them as read
    assert_eq!(buf.extract(0.0, 100), vec![0.5; 100]);
    assert_eq!(buf.extract(100.0, 400), vec![0.0; 400]);
    assert_eq!(buf.extract(500.0, 100), vec![0.25; 100]);
    assert_eq!(buf.extract(600.0, 100), vec![0.0; 100]);
    assert_eq!(buf.extract(700.0, 100), vec![0.1; 100]);

    // a source that only fails: taken as ended after MAX_AUDIO_ERRORS_IN_A_ROW, one gap
    let control = Arc::new(RunControl::default());
    let mut src = Scripted(
        std::iter::once(block(0, 0.5))
            .chain(std::iter::repeat_n(None, 100))
            .collect(),
    );
    let mut a = AudioFaults::new(
        &mut src,
        "alsa://mic".into(),
        OnBadFrame::Skip,
        control.clone(),
    );
    assert!(a.next_block().unwrap().is_some());
    assert!(a.next_block().unwrap().is_none());
    assert_eq!(control.audio_gaps(), 1);
    assert_eq!(src.0.len(), 100 - MAX_AUDIO_ERRORS_IN_A_ROW as usize);
}

#[test]
fn the_bad_frame_policy_defaults_by_input() {
    use super::faults::OnBadFrame;
    assert_eq!(OnBadFrame::default_for(false, 0), OnBadFrame::Stop);
    assert_eq!(OnBadFrame::default_for(false, 2), OnBadFrame::Skip);
    assert_eq!(OnBadFrame::default_for(false, -1), OnBadFrame::Skip);
    assert_eq!(OnBadFrame::default_for(true, 0), OnBadFrame::Skip);
    let live = RunOptions {
        input: Input::Uris {
            video: InputUri::V4l2 {
                device: "/dev/video0".into(),
            },
            audio: None,
            options: VideoOptions::default(),
        },
        ..RunOptions::default()
    };
    assert_eq!(live.bad_frame_policy(), OnBadFrame::Skip);
    assert_eq!(RunOptions::default().bad_frame_policy(), OnBadFrame::Stop);
    let set = RunOptions {
        on_bad_frame: Some(OnBadFrame::Stop),
        ..live
    };
    assert_eq!(set.bad_frame_policy(), OnBadFrame::Stop);
    assert_eq!(" skip".parse::<OnBadFrame>(), Ok(OnBadFrame::Skip));
    assert_eq!(OnBadFrame::Stop.to_string(), "stop");
    assert_eq!(
        "ignore".parse::<OnBadFrame>().unwrap_err().to_string(),
        "\"ignore\": expected stop or skip"
    );
}
