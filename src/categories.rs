//! The category vocabulary (issue 15): a short, user-facing label set (`person`, `dog`, `car`, …,
//! `other`, Frigate-style) over the 1000 ImageNet and the AudioSet classes (521 in YAMNet order,
//! `audioset`; from version 2 also the 527 of AudioSet order, `audioset_527`, for the official
//! C3N / AVSBench audio heads), and the per-region combination of visual and audio evidence that
//! picks a region's category.
//!
//! Source: `models/assets/categories-v<N>.json`, built from WordNet 3.0 hypernyms and the AudioSet
//! ontology by `models/c3n/categories.py` and embedded in the model as the metadata value
//! `c3n.categories` (with `c3n.categories.sha256` and `.version`). The arithmetic of
//! [`CategoryMap::classify`] is the same as `c3n.categories.region_category` in Python.

use serde::Deserialize;

/// Why the `c3n.categories` text cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CategoryError {
    /// Not the expected JSON document.
    #[error("not a category vocabulary: {0}")]
    Json(#[from] serde_json::Error),
    /// The document parses but is inconsistent (sizes, indices, names, parameters).
    #[error("inconsistent category vocabulary: {0}")]
    Invalid(String),
}

/// The audio-visual combination (`combine` in the asset; see [`CategoryMap::classify`]).
/// Chosen with `models/c3n/eval/regionstats.py` (model card, "Labels").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Combine {
    /// The rule; this runtime knows `"c3im"` (the category of the region's C3IM label).
    pub rule: String,
    /// τa: the person rule needs the best human-sound sigmoid ≥ this (> 1 disables it).
    pub person_audio_min: f32,
    /// τv: ... and the region's visual person + clothing mass ≥ this.
    pub person_visual_min: f32,
}

#[derive(Debug, Deserialize)]
struct Asset {
    name: String,
    version: u32,
    categories: Vec<String>,
    imagenet: Vec<usize>,
    audioset: Vec<i64>,
    /// Version 2: the 527 AudioSet classes in AudioSet order (absent in version 1).
    #[serde(default)]
    audioset_527: Option<Vec<i64>>,
    worn: Vec<usize>,
    combine: Combine,
}

/// The parsed vocabulary: category names and, per fine class, its category.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryMap {
    /// Asset version (`version`).
    pub version: u32,
    /// Category names in index order; the last is `other`. Each is a valid MQTT topic level
    /// (`[a-z0-9_]+`).
    pub names: Vec<String>,
    /// Category index of each ImageNet class (`visual_logits` column order).
    pub imagenet: Vec<usize>,
    /// Category index of each AudioSet class (`audio_logits` column order); `None` = no category
    /// (music genres, silence, noise, ...).
    pub audioset: Vec<Option<usize>>,
    /// ImageNet classes that are clothing (WordNet `clothing`): evidence for `person`.
    pub worn: Vec<usize>,
    /// Combination parameters.
    pub combine: Combine,
    other: usize,
    person: Option<usize>,
}

/// The category chosen for one region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// Category index into [`CategoryMap::names`].
    pub index: usize,
    /// Its score (0–1): the region's visual mass of the category, or the human-sound sigmoid
    /// when the person rule decided.
    pub score: f32,
}

impl CategoryMap {
    /// Parses and checks the asset text for a model with `n_imagenet` / `n_audioset` classes.
    /// The AudioSet list is the asset's `audioset` (YAMNet's 521) or `audioset_527` (AudioSet's
    /// 527), whichever has `n_audioset` entries.
    /// Errors: [`CategoryError`] naming what is wrong.
    pub fn from_json(
        text: &str,
        n_imagenet: usize,
        n_audioset: usize,
    ) -> Result<Self, CategoryError> {
        let a: Asset = serde_json::from_str(text)?;
        let bad = |m: String| Err(CategoryError::Invalid(m));
        if a.name != "c3n-categories" {
            return bad(format!("name is {:?}, expected \"c3n-categories\"", a.name));
        }
        let k = a.categories.len();
        if !(2..=64).contains(&k) {
            return bad(format!("{k} categories (expected 2 to 64)"));
        }
        for n in &a.categories {
            if n.is_empty()
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return bad(format!("category name {n:?} is not [a-z0-9_]+"));
            }
        }
        if a.categories.last().map(String::as_str) != Some("other") {
            return bad("the last category must be \"other\"".into());
        }
        if a.imagenet.len() != n_imagenet {
            return bad(format!(
                "{} ImageNet entries, the model has {n_imagenet} classes",
                a.imagenet.len()
            ));
        }
        let audioset_src = if a.audioset.len() == n_audioset {
            &a.audioset
        } else if let Some(v) = a.audioset_527.as_ref().filter(|v| v.len() == n_audioset) {
            v
        } else {
            return bad(format!(
                "{} AudioSet entries ({} in audioset_527), the model has {n_audioset} classes",
                a.audioset.len(),
                a.audioset_527.as_ref().map_or(0, Vec::len)
            ));
        };
        if let Some(c) = a.imagenet.iter().find(|&&c| c >= k) {
            return bad(format!("ImageNet category index {c} >= {k}"));
        }
        let mut audioset = Vec::with_capacity(audioset_src.len());
        for &c in audioset_src {
            audioset.push(match c {
                -1 => None,
                c if (0..k as i64).contains(&c) => Some(c as usize),
                c => {
                    return bad(format!(
                        "AudioSet category index {c} (expected -1 to {})",
                        k - 1
                    ))
                }
            });
        }
        if let Some(i) = a.worn.iter().find(|&&i| i >= n_imagenet) {
            return bad(format!("worn class {i} >= {n_imagenet}"));
        }
        let c = a.combine;
        if c.rule != "c3im" {
            return bad(format!(
                "combination rule {:?} is unknown to this runtime (it knows \"c3im\")",
                c.rule
            ));
        }
        if !c.person_audio_min.is_finite() || !c.person_visual_min.is_finite() {
            return bad(format!("combine parameters out of range: {c:?}"));
        }
        Ok(Self {
            version: a.version,
            person: a.categories.iter().position(|n| n == "person"),
            other: k - 1,
            names: a.categories,
            imagenet: a.imagenet,
            audioset,
            worn: a.worn,
            combine: c,
        })
    }

    /// Index of `other`.
    pub fn other(&self) -> usize {
        self.other
    }

    /// Name of category `index`; `other` for an index past the vocabulary.
    pub fn name(&self, index: usize) -> String {
        self.names
            .get(index)
            .cloned()
            .unwrap_or_else(|| "other".into())
    }

    /// Index of a category name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Per category: the visual mass (the region's ImageNet softmax summed over the category's
    /// classes) and the audio score (the largest YAMNet sigmoid among the category's AudioSet
    /// classes, 0 without one), plus the clothing mass. `region_logits [1000]`,
    /// `audio_logits [521]`; shorter slices are read as far as they go.
    pub fn evidence(
        &self,
        region_logits: &[f32],
        audio_logits: &[f32],
    ) -> (Vec<f64>, Vec<f64>, f64) {
        let k = self.names.len();
        let mut vis = vec![0.0f64; k];
        let max = region_logits
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let mut p: Vec<f64> = region_logits
            .iter()
            .map(|&l| (f64::from(l) - f64::from(max)).exp())
            .collect();
        let z: f64 = p.iter().sum();
        if z > 0.0 && z.is_finite() {
            p.iter_mut().for_each(|x| *x /= z);
        }
        for (&c, &pj) in self.imagenet.iter().zip(&p) {
            vis[c] += pj;
        }
        let mut aud = vec![0.0f64; k];
        for (&c, &l) in self.audioset.iter().zip(audio_logits) {
            if let Some(c) = c {
                let s = 1.0 / (1.0 + (-f64::from(l)).exp());
                if s > aud[c] {
                    aud[c] = s;
                }
            }
        }
        let worn = self.worn.iter().filter_map(|&i| p.get(i)).sum();
        (vis, aud, worn)
    }

    /// The category from the audio side alone, for models without an ImageNet head (schema 3
    /// without C3IM outputs, e.g. the AVSBench baseline): the AudioSet class with the largest
    /// logit (first on ties) and its category (`other` when it has none), scored by its sigmoid.
    /// Returns `(AudioSet index, choice)`, `None` for empty logits.
    pub fn classify_audio(&self, audio_logits: &[f32]) -> Option<(usize, Choice)> {
        if audio_logits.is_empty() {
            return None;
        }
        let (i, l) = crate::util::stats::first_max(audio_logits);
        let index = self
            .audioset
            .get(i)
            .copied()
            .flatten()
            .unwrap_or(self.other);
        let score = (1.0 / (1.0 + (-f64::from(l)).exp())) as f32;
        Some((i, Choice { index, score }))
    }

    /// The category of a region from its pooled ImageNet logits, the frame's AudioSet logits
    /// and the region's C3IM unified label `sub_label` (ImageNet index).
    ///
    /// Person rule first: `aud[person] ≥ τa` and `vis[person] + worn ≥ τv` → `person`, scored
    /// `aud[person]` (a speaking person seen as clothing). Otherwise the category of
    /// `sub_label`, scored by the region's visual mass of that category. An out-of-range
    /// `sub_label` gives `other`.
    pub fn classify(
        &self,
        region_logits: &[f32],
        audio_logits: &[f32],
        sub_label: usize,
    ) -> Choice {
        let (vis, aud, worn) = self.evidence(region_logits, audio_logits);
        let c = &self.combine;
        if let Some(p) = self.person {
            if aud[p] >= f64::from(c.person_audio_min)
                && vis[p] + worn >= f64::from(c.person_visual_min)
            {
                return Choice {
                    index: p,
                    score: aud[p] as f32,
                };
            }
        }
        let index = self.imagenet.get(sub_label).copied().unwrap_or(self.other);
        Choice {
            index,
            score: vis[index] as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // person 0, dog 1, other 2; ImageNet 0,1 dog, 2 coat (worn, other), 3 rock (other);
    // AudioSet 0 speech -> person, 1 bark -> dog, 2 music -> none
    fn toy(combine: &str) -> CategoryMap {
        let text = format!(
            r#"{{"name":"c3n-categories","version":1,"categories":["person","dog","other"],
               "imagenet":[1,1,2,2],"audioset":[0,1,-1],"worn":[2],"combine":{combine}}}"#
        );
        CategoryMap::from_json(&text, 4, 3).expect("toy asset")
    }
    const BASE: &str = r#"{"rule":"c3im","person_audio_min":0.5,"person_visual_min":0.5}"#;

    fn ln(p: &[f64]) -> Vec<f32> {
        p.iter().map(|x| x.ln() as f32).collect()
    }

    #[test]
    fn the_c3im_label_decides_and_the_person_rule_needs_clothing_and_human_sounds() {
        let m = toy(BASE);
        let silent = [-9.0f32, -9.0, 9.0];
        let logits = ln(&[0.3, 0.2, 0.1, 0.4]); // dog mass 0.5, other 0.5
        let c = m.classify(&logits, &silent, 0);
        assert_eq!(m.names[c.index], "dog");
        assert!((c.score - 0.5).abs() < 1e-5);
        assert_eq!(m.classify(&logits, &silent, 3).index, 2);
        assert_eq!(m.classify(&logits, &silent, 99).index, 2); // out of range: other
        let coat = ln(&[0.05, 0.05, 0.8, 0.1]);
        let c = m.classify(&coat, &[3.0, -9.0, -9.0], 2); // coat + speech: person
        assert_eq!(c.index, 0);
        assert!((f64::from(c.score) - 1.0 / (1.0 + (-3f64).exp())).abs() < 1e-6);
        assert_eq!(m.classify(&coat, &[-9.0, -9.0, 3.0], 2).index, 2); // coat + music: not
                                                                       // speech on a dog region (no clothing) stays a dog
        let dog = ln(&[0.5, 0.4, 0.05, 0.05]);
        assert_eq!(m.classify(&dog, &[3.0, -9.0, -9.0], 0).index, 1);
    }

    #[test]
    fn bad_assets_are_refused_with_the_reason() {
        let ok = r#""rule":"c3im","person_audio_min":0.5,"person_visual_min":0.5"#;
        let doc = |cats: &str, img: &str, aud: &str| {
            format!(
                r#"{{"name":"c3n-categories","version":1,"categories":{cats},"imagenet":{img},"audioset":{aud},"worn":[],"combine":{{{ok}}}}}"#
            )
        };
        let e = |t: String| CategoryMap::from_json(&t, 2, 1).unwrap_err().to_string();
        assert!(e(doc(r#"["dog","other"]"#, "[0]", "[0]")).contains("1 ImageNet entries"));
        assert!(e(doc(r#"["dog","other"]"#, "[0,2]", "[0]")).contains("index 2"));
        assert!(e(doc(r#"["dog","other"]"#, "[0,1]", "[5]")).contains("AudioSet category index 5"));
        assert!(e(doc(r#"["other","dog"]"#, "[0,1]", "[0]")).contains("last category"));
        assert!(e(doc(r#"["Dog/x","other"]"#, "[0,1]", "[0]")).contains("not [a-z0-9_]+"));
        assert!(e("[1,2]".into()).contains("not a category vocabulary"));
        let vote = doc(r#"["dog","other"]"#, "[0,1]", "[0]").replace("c3im", "vote");
        assert!(e(vote).contains("rule \"vote\" is unknown"));
        assert!(CategoryMap::from_json(&doc(r#"["dog","other"]"#, "[0,1]", "[-1]"), 2, 1).is_ok());
    }

    #[test]
    fn the_527_list_is_chosen_by_width_and_the_audio_side_labels_alone() {
        let text = r#"{"name":"c3n-categories","version":2,"categories":["person","dog","other"],
            "imagenet":[1,1,2,2],"audioset":[0,1,-1],"audioset_527":[0,0,1,-1],"worn":[2],
            "combine":{"rule":"c3im","person_audio_min":0.5,"person_visual_min":0.5}}"#;
        let m3 = CategoryMap::from_json(text, 4, 3).expect("521-style list");
        assert_eq!(m3.audioset, vec![Some(0), Some(1), None]);
        let m4 = CategoryMap::from_json(text, 4, 4).expect("527-style list");
        assert_eq!(m4.audioset, vec![Some(0), Some(0), Some(1), None]);
        let e = CategoryMap::from_json(text, 4, 5).unwrap_err().to_string();
        assert!(e.contains("3 AudioSet entries (4 in audioset_527)"), "{e}");
        let (i, c) = m4
            .classify_audio(&[-1.0, 0.0, 2.0, 1.0])
            .expect("top class");
        assert_eq!((i, m4.names[c.index].as_str()), (2, "dog"));
        assert!((f64::from(c.score) - 1.0 / (1.0 + (-2f64).exp())).abs() < 1e-6);
        let (i, c) = m4
            .classify_audio(&[-1.0, 0.0, 2.0, 3.0])
            .expect("top class");
        assert_eq!((i, c.index), (3, m4.other())); // no category: other
        assert!(m4.classify_audio(&[]).is_none());
    }
}
