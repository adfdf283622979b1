//! `window://`: a desktop window for development (embedded-graphics-simulator with SDL2, cargo
//! feature `window`, system package libsdl2-dev). The window takes the size of the first frame;
//! closing it ends this output (the run goes on).

use std::time::Duration;

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics_simulator::{
    OutputSettingsBuilder, SimulatorDisplay, SimulatorEvent, Window,
};

use super::output::OutputThread;
use super::slot::Ended;
use super::DisplayError;
use crate::render::Renderer;

/// Checks that a display server is reachable and starts the window's thread (SDL windows live on
/// the thread that made them).
pub(super) fn open(renderer: Renderer) -> Result<OutputThread, DisplayError> {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        return Err(DisplayError::Output {
            what: "window://".into(),
            reason: "no display server (neither DISPLAY nor WAYLAND_DISPLAY is set); use \
                     display://0 for the framebuffer or http://0.0.0.0:8080 for a browser preview"
                .into(),
        });
    }
    let thread = OutputThread::spawn_with("window://".into(), false, move |slot| {
        let settings = OutputSettingsBuilder::new().scale(1).build();
        let mut window = Window::new("c3n-edge", &settings);
        let mut display: Option<SimulatorDisplay<Rgb888>> = None;
        loop {
            let scene = match slot.take_timeout(Duration::from_millis(30)) {
                Ok(s) => s,
                Err(Ended) => return Ok(()),
            };
            if let Some(scene) = scene {
                let (w, h) = scene.image.dimensions();
                let d = display.get_or_insert_with(|| SimulatorDisplay::new(Size::new(w, h)));
                match renderer.draw(&scene, d) {
                    Ok(()) => {}
                    Err(never) => match never {},
                }
            }
            if let Some(d) = &display {
                window.update(d);
                if window.events().any(|e| matches!(e, SimulatorEvent::Quit)) {
                    tracing::info!("window closed");
                    return Ok(());
                }
            }
        }
    });
    Ok(thread)
}
