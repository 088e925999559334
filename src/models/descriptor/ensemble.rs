//! The naive ensemble of descriptor networks (the lecture's "cheap boost"): N networks trained with
//! different seeds (so different initialisations, data streams and triplets); an image's descriptor is the
//! concatenation of the members' unit descriptors, re-normalised: each member weighs the same, and the
//! squared distance of two ensemble descriptors is the mean of the members' squared distances,
//! `|a - b|^2 = sum_i |a_i - b_i|^2 / N`.
//!
//! File format: one safetensors file holding every member's tensors under `member{i}.` + its own name, with
//! the metadata `ensemble = N` ([`DescriptorEnsemble::to_weights`]).

use image::RgbImage;

use super::{sample_dense, unit, Descriptor};
use crate::error::{Error, Result};
use crate::matching::dense::{DenseDescriber, DenseDescriptors};
use crate::models::Weights;
use crate::runtime::Context;

/// Several descriptor networks whose descriptors are concatenated and re-normalised.
pub struct DescriptorEnsemble {
    members: Vec<Descriptor>,
    name: String,
}

/// The prefix of member `i`'s tensors in an ensemble file.
pub fn member_prefix(i: usize) -> String {
    format!("member{i}.")
}

impl DescriptorEnsemble {
    pub fn new(members: Vec<Descriptor>) -> Result<Self> {
        if members.is_empty() {
            return Err(Error::InvalidParam {
                op: "ensemble",
                message: "an ensemble needs at least one member".into(),
            });
        }
        let name = format!("ensemble{}", members.len());
        Ok(DescriptorEnsemble { members, name })
    }

    /// Whether `weights` is an ensemble file.
    pub fn is_ensemble(weights: &Weights) -> bool {
        weights.metadata().contains_key("ensemble") || weights.names().any(|n| n.starts_with("member0."))
    }

    /// The members of an ensemble file.
    pub fn from_weights(ctx: &Context, weights: &Weights) -> Result<Self> {
        let mut members = Vec::new();
        for i in 0.. {
            let prefix = member_prefix(i);
            let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = weights
                .names()
                .filter_map(|n| {
                    let own = n.strip_prefix(&prefix)?;
                    let shape = weights.shape(n)?.to_vec();
                    Some((own.to_string(), shape.clone(), weights.get(n, &shape).ok()?.to_vec()))
                })
                .collect();
            if tensors.is_empty() {
                break;
            }
            let source = format!("{} ({prefix})", weights.source);
            members.push(Descriptor::new(ctx, &Weights::from_tensors(&source, tensors))?);
        }
        if let Some(n) = weights.metadata().get("ensemble").and_then(|v| v.parse::<usize>().ok()) {
            if n != members.len() {
                return Err(Error::Weights {
                    path: weights.source.clone(),
                    message: format!("says it holds {n} members, but has tensors of {}", members.len()),
                });
            }
        }
        Self::new(members)
    }

    /// The members' weights in one set (prefixed names, `ensemble = N`).
    pub fn to_weights(members: &[Weights]) -> Weights {
        let mut tensors = Vec::new();
        for (i, w) in members.iter().enumerate() {
            for n in w.names() {
                if let Some(shape) = w.shape(n) {
                    if let Ok(v) = w.get(n, shape) {
                        tensors.push((format!("{}{n}", member_prefix(i)), shape.to_vec(), v.to_vec()));
                    }
                }
            }
        }
        Weights::from_tensors("ensemble", tensors)
            .with_metadata("model", "descriptor")
            .with_metadata("ensemble", members.len())
    }

    pub fn members(&self) -> &[Descriptor] {
        &self.members
    }

    /// Sets the name used in reports.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl DenseDescriber for DescriptorEnsemble {
    fn describe(&self, ctx: &Context, image: &RgbImage) -> Result<DenseDescriptors> {
        let parts = self.members.iter().map(|m| m.describe_image(ctx, image)).collect::<Result<Vec<_>>>()?;
        let first = &parts[0];
        let dim: usize = parts.iter().map(|p| p.dim).sum();
        let cells = first.grid_w * first.grid_h;
        let mut data = Vec::with_capacity(cells * dim);
        for i in 0..cells {
            let start = data.len();
            for p in &parts {
                data.extend_from_slice(&p.data[i * p.dim..(i + 1) * p.dim]);
            }
            unit(&mut data[start..]);
        }
        Ok(DenseDescriptors { stride: first.stride, grid_w: first.grid_w, grid_h: first.grid_h, dim, data })
    }
    fn describe_at(&self, _image: &RgbImage, dense: &DenseDescriptors, points: &[(f64, f64)]) -> Result<Vec<f32>> {
        sample_dense(dense, points)
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    /// The members run one after the other: the largest member's memory.
    fn gpu_bytes(&self, width: u32, height: u32) -> Option<u64> {
        self.members.iter().filter_map(|m| m.gpu_bytes_at(width as usize, height as usize)).max()
    }
}
