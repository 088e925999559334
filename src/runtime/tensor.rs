//! GPU tensors: f32, NCHW, in a storage buffer; uploaded from and downloaded to [`HostTensor`], their CPU
//! twin (`crate::host`).

use super::context::Context;
use crate::error::{Error, Result};
use crate::host::HostTensor;

/// A 4-D f32 tensor in a GPU storage buffer, NCHW. Cloning shares the buffer (a handle, not a copy).
#[derive(Clone, Debug)]
pub struct Tensor {
    buffer: wgpu::Buffer,
    shape: [usize; 4],
}

impl Tensor {
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
    /// The same buffer seen with another shape of at most as many elements (scratch reuse).
    pub(crate) fn view(&self, shape: [usize; 4]) -> Tensor {
        debug_assert!(shape.iter().product::<usize>() <= self.numel());
        Tensor { buffer: self.buffer.clone(), shape }
    }
}

impl Context {
    /// Checks that a tensor of this shape fits in one storage binding on this adapter.
    pub fn check_fits(&self, name: &str, shape: [usize; 4]) -> Result<()> {
        let bytes = shape.iter().map(|&d| d as u64).product::<u64>() * 4;
        let limit = self.max_binding_bytes();
        if bytes > limit {
            return Err(Error::TooLarge {
                name: name.to_string(),
                shape: shape.to_vec(),
                bytes,
                limit,
                adapter: self.adapter().name.clone(),
                hint: String::new(),
            });
        }
        Ok(())
    }

    /// A zero-filled GPU tensor (wgpu zero-initialises new buffers).
    pub fn tensor(&self, name: &str, shape: [usize; 4]) -> Result<Tensor> {
        self.check_fits(name, shape)?;
        let bytes = (shape.iter().product::<usize>() as u64 * 4).max(4);
        let buffer = self.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Tensor { buffer, shape })
    }

    /// Uploads a host tensor.
    pub fn upload(&self, name: &str, host: &HostTensor) -> Result<Tensor> {
        let t = self.tensor(name, host.shape)?;
        self.write(&t, &host.data)?;
        Ok(t)
    }

    /// Overwrites a tensor's contents from the host.
    pub fn write(&self, t: &Tensor, data: &[f32]) -> Result<()> {
        if data.len() != t.numel() {
            return Err(Error::Shape {
                op: "write",
                message: format!("tensor {:?} holds {} values, got {}", t.shape, t.numel(), data.len()),
            });
        }
        if !data.is_empty() {
            self.queue().write_buffer(&t.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Fills a tensor with one value (tests pre-fill outputs with NaN so unwritten elements show).
    pub fn fill(&self, t: &Tensor, value: f32) -> Result<()> {
        self.write(t, &vec![value; t.numel()])
    }

    /// Copies a tensor back to the host (blocks until the GPU is done with it).
    pub fn download(&self, t: &Tensor) -> Result<HostTensor> {
        let bytes = t.bytes();
        if bytes == 0 {
            return Ok(HostTensor::zeros(t.shape));
        }
        let staging = self.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("download"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut rec = self.recorder("download");
        rec.copy(&t.buffer, 0, &staging, 0, bytes);
        rec.submit()?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        // The channel carries the map_async result: both a dropped sender and a failed map are errors.
        rx.recv()
            .map_err(|e| Error::Gpu { op: "download".into(), message: e.to_string() })?
            .map_err(|e| Error::Gpu { op: "download".into(), message: e.to_string() })?;
        let data = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Gpu { op: "download".into(), message: e.to_string() })?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        HostTensor::new(t.shape, data)
    }
}
