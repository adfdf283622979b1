//! Binary masks at the model resolution and their COCO-style run-length encoding (the events'
//! `mask` field).

use serde::{Deserialize, Serialize};

/// A binary mask at the model resolution, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitMask {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `height × width` flags, row-major.
    pub bits: Vec<bool>,
}

impl BitMask {
    /// Flag at `(x, y)`; false outside.
    pub fn get(&self, x: u32, y: u32) -> bool {
        x < self.width && y < self.height && self.bits[(y * self.width + x) as usize]
    }

    /// Number of set pixels.
    pub fn count(&self) -> usize {
        self.bits.iter().filter(|&&b| b).count()
    }

    /// Intersection over union with a mask of the same size (0 when both are empty).
    pub fn iou(&self, other: &BitMask) -> f64 {
        let (mut inter, mut union) = (0usize, 0usize);
        for (&a, &b) in self.bits.iter().zip(&other.bits) {
            inter += usize::from(a && b);
            union += usize::from(a || b);
        }
        if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        }
    }

    /// COCO-style uncompressed RLE: column-major run lengths, starting with a run of zeros.
    pub fn to_rle(&self) -> Rle {
        let mut counts = vec![];
        let mut cur = false;
        let mut run = 0u32;
        for x in 0..self.width {
            for y in 0..self.height {
                let b = self.get(x, y);
                if b != cur {
                    counts.push(run);
                    run = 0;
                    cur = b;
                }
                run += 1;
            }
        }
        counts.push(run);
        Rle {
            size: [self.height, self.width],
            counts,
        }
    }
}

/// COCO-style uncompressed run-length encoding of a binary mask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rle {
    /// `[height, width]` of the mask (the model resolution, 224 × 224).
    pub size: [u32; 2],
    /// Alternating run lengths of 0s and 1s in column-major order, starting with 0s.
    pub counts: Vec<u32>,
}

impl Rle {
    /// Decodes back into a mask.
    pub fn to_mask(&self) -> BitMask {
        let [h, w] = self.size;
        let mut bits = vec![false; (h * w) as usize];
        let (mut i, mut val) = (0usize, false);
        for &c in &self.counts {
            for _ in 0..c {
                if i < bits.len() {
                    let (x, y) = (i as u32 / h, i as u32 % h);
                    bits[(y * w + x) as usize] = val;
                }
                i += 1;
            }
            val = !val;
        }
        BitMask {
            width: w,
            height: h,
            bits,
        }
    }
}
