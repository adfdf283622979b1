//! `window://`: a desktop window for development (embedded-graphics-simulator with SDL2, cargo
//! feature `window`, system package libsdl2-dev). The window takes the size of the first frame;
//! closing it ends this output (the run goes on).
//!
//! The window opens on the first frame, and opening it waits for the display server: a server
//! that answers late (busy machine, remote display) holds up only this thread, while newer
//! frames replace the waiting one in the slot (counted as skipped). So when the server answers,
//! the window shows the newest frame; at the end of the input it shows the final frame, logs
//! `output window://: final frame N shown`, and stays open on it for `?linger=S` seconds (a stop
//! signal or closing the window ends that early).

use std::time::{Duration, Instant};

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics_simulator::{
    OutputSettingsBuilder, SimulatorDisplay, SimulatorEvent, Window,
};

use super::output::{final_frame_shown, OutputThread};
use super::DisplayError;
use crate::render::Renderer;

/// How often the window is redrawn and its events read while no new frame comes.
const REFRESH: Duration = Duration::from_millis(30);

/// Whether the user closed the window (window manager close, Escape).
fn quit_asked(window: &Window) -> bool {
    window.events().any(|e| matches!(e, SimulatorEvent::Quit))
}

/// Checks that a display server is reachable and starts the window's thread (SDL windows live on
/// the thread that made them). `linger`: how long the window stays open on its final frame.
pub(super) fn open(renderer: Renderer, linger: Duration) -> Result<OutputThread, DisplayError> {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        return Err(DisplayError::Output {
            what: "window://".into(),
            reason: "no display server (neither DISPLAY nor WAYLAND_DISPLAY is set); use \
                     display://0 for the framebuffer or http://0.0.0.0:8080 for a browser preview"
                .into(),
        });
    }
    let name = "window://".to_string();
    let thread = OutputThread::spawn_with(name.clone(), false, move |slot| {
        let settings = OutputSettingsBuilder::new().scale(1).build();
        let mut window = Window::new("c3n-edge", &settings);
        let mut display: Option<SimulatorDisplay<Rgb888>> = None;
        // number of the frame drawn last; it is on the screen once `update` has returned
        let mut shown = None;
        // `Ended`: the input ended (and the slot is drained) or the run stops
        while let Ok(scene) = slot.take_timeout(REFRESH) {
            if let Some(scene) = scene {
                let (w, h) = scene.image.dimensions();
                let d = display.get_or_insert_with(|| SimulatorDisplay::new(Size::new(w, h)));
                match renderer.draw(&scene, d) {
                    Ok(()) => {}
                    Err(never) => match never {},
                }
                shown = Some(scene.number);
            }
            if let Some(d) = &display {
                // the first update opens the window: it waits for the display server
                window.update(d);
                if quit_asked(&window) {
                    tracing::info!("window closed");
                    return Ok(());
                }
            }
        }
        // the input ended and the final frame was drawn and presented in the last round;
        // a closed slot means the run stops: no linger then
        let (Some(n), Some(d), false) = (shown, &display, slot.is_closed()) else {
            return Ok(());
        };
        final_frame_shown(&name, n, linger);
        let until = Instant::now() + linger;
        while Instant::now() < until && !slot.wait_closed(REFRESH) {
            // redrawn so that an uncovered window is not left blank
            window.update(d);
            if quit_asked(&window) {
                tracing::info!("window closed");
                return Ok(());
            }
        }
        Ok(())
    });
    Ok(thread)
}
