//! Object colours of the overlay: a stable hue per event id, a grey for regions not announced
//! yet, and the mask tint (alpha blending).

/// Colour of regions that belong to no announced event yet (light grey).
pub const PENDING_COLOUR: [u8; 3] = [200, 200, 200];

/// Stable colour of an object id: FNV-1a hash of the id → hue (0–359°), saturation 0.85,
/// value 1.
pub fn object_colour(id: &str) -> [u8; 3] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hsv((h % 360) as f32, 0.85, 1.0)
}

fn hsv(h: f32, s: f32, v: f32) -> [u8; 3] {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let q = |f: f32| ((f + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    [q(r), q(g), q(b)]
}

/// `base` alpha-blended with `colour` (the mask tint), per channel, rounded.
pub fn blend(base: [u8; 3], colour: [u8; 3], alpha: f32) -> [u8; 3] {
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = (f32::from(base[c]) * (1.0 - alpha) + f32::from(colour[c]) * alpha).round() as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stable_and_distinct() {
        assert_eq!(object_colour("1.000-abcdef"), object_colour("1.000-abcdef"));
        assert_ne!(object_colour("1.000-abcdef"), object_colour("2.000-abcdef"));
        assert_eq!(hsv(0.0, 1.0, 1.0), [255, 0, 0]);
        assert_eq!(hsv(120.0, 1.0, 1.0), [0, 255, 0]);
        assert_eq!(blend([0, 0, 0], [255, 255, 255], 0.5), [128, 128, 128]);
    }
}
