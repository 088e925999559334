//! The device context: picks an adapter, opens a device with the adapter's real limits, and owns the
//! pipeline cache. Ops record their dispatches into a [`Recorder`] (one command encoder) and submit once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::kernels::Kernel;
use super::params::GpuParams;
use super::policy::Policy;
use super::tensor::Tensor;
use crate::error::{Error, Result};

/// A line of `corrflow info`: what an adapter is and what it can hold.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    /// The smallest subgroup the adapter may run (wgpu reports at least 4): kernels that hand values
    /// between lanes with shuffles size their blocks by it.
    pub subgroup_min_size: u32,
}

impl AdapterSummary {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        AdapterSummary {
            name: info.name,
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            subgroup_min_size: info.subgroup_min_size,
        }
    }

    /// About how many workgroups one dispatch needs to keep this adapter busy, for kernels that can split
    /// their work further at a cost (partial sums to reduce): a GPU runs hundreds at once; a CPU driver
    /// (llvmpipe, lavapipe) runs one per core, so 8 per core leave it balanced without paying for splits it
    /// cannot run side by side. On the 2-core VM, FlowNetS width 0.25's training step (batch 4, 256x192) took
    /// 0.54-0.64 s with 16 against 0.66-0.81 s with 256 (`benches/RESULTS.md`).
    pub fn workgroups_to_fill(&self) -> usize {
        if self.device_type == format!("{:?}", wgpu::DeviceType::Cpu) {
            8 * std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            256
        }
    }
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.backend, self.device_type)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        write!(f, ")")
    }
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Real GPUs first, then virtual/unknown ones, software rasterisers last. Among equals, the native compute
/// APIs before GL (GL compute on llvmpipe is several times slower than lavapipe's Vulkan).
fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::BrowserWebGpu => 1,
        _ => 2,
    };
    (device, backend)
}

/// Every adapter this machine offers (honouring `WGPU_BACKEND`), best first.
pub async fn adapter_summaries() -> Vec<AdapterSummary> {
    let mut adapters = instance().enumerate_adapters(wgpu::Backends::all()).await;
    adapters.sort_by_key(|a| adapter_rank(&a.get_info()));
    adapters.iter().map(AdapterSummary::of).collect()
}

/// Cache key: a kernel and the values of its `override` constants.
type PipelineKey = (Kernel, Vec<(&'static str, u64)>);

struct CachedPipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// Owns (a handle to) the device and queue, and the pipelines built on them.
pub struct Context {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: AdapterSummary,
    limits: wgpu::Limits,
    pipelines: Mutex<HashMap<PipelineKey, Arc<CachedPipeline>>>,
    /// Choices measured once on this adapter (e.g. conv tile sizes per layer-shape class), by key.
    tuned: Mutex<HashMap<String, Vec<u32>>>,
    /// Scratch buffers shared by every op that records into this context (see [`Context::scratch`]).
    scratch: Mutex<HashMap<&'static str, Tensor>>,
    /// Called before each pipeline is built (see [`Context::on_compile`]).
    compile_observer: Mutex<Option<CompileObserver>>,
    /// Which kernels the ops choose where they have a choice.
    policy: Policy,
}

/// A callback told about each pipeline about to be built: the kernel's name and how many pipelines this
/// context has built before it.
pub type CompileObserver = Box<dyn Fn(&'static str, usize) + Send + Sync>;

impl Context {
    /// Picks the best adapter (see [`adapter_rank`]); `WGPU_BACKEND` restricts the backends and
    /// `WGPU_ADAPTER_NAME` (a case-insensitive substring) picks one by name.
    pub async fn new() -> Result<Self> {
        let mut adapters = instance().enumerate_adapters(wgpu::Backends::all()).await;
        let wanted = std::env::var("WGPU_ADAPTER_NAME").ok().filter(|s| !s.is_empty());
        let mut detail = String::new();
        if let Some(name) = &wanted {
            let all: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&name.to_lowercase()));
            if adapters.is_empty() {
                detail = format!(" matching WGPU_ADAPTER_NAME={name:?} (adapters present: {all:?})");
            }
        }
        if let Ok(b) = std::env::var("WGPU_BACKEND") {
            if adapters.is_empty() && detail.is_empty() {
                detail = format!(" for WGPU_BACKEND={b:?}");
            }
        }
        adapters.sort_by_key(|a| adapter_rank(&a.get_info()));
        let adapter = adapters.into_iter().next().ok_or(Error::NoAdapter { detail })?;
        Self::from_adapter(&adapter).await
    }

    /// Blocking form of [`Context::new`], for command-line programs, tests and benches.
    pub fn new_blocking() -> Result<Self> {
        pollster::block_on(Self::new())
    }

    /// Opens a device on the given adapter, asking for all of its limits (large storage buffers above all).
    pub async fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self> {
        let summary = AdapterSummary::of(adapter);
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("corrflow"),
                // Subgroup operations where offered: the tiled conv kernels share weight loads across lanes.
                required_features: adapter.features() & wgpu::Features::SUBGROUP,
                required_limits: limits.clone(),
                memory_hints: wgpu::MemoryHints::Performance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice { adapter: summary.name.clone(), message: e.to_string() })?;
        Ok(Self::from_device(device, queue, summary, limits))
    }

    /// Wraps a device the caller already owns (for applications that render with the same device).
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter: AdapterSummary,
        limits: wgpu::Limits,
    ) -> Self {
        Context {
            device,
            queue,
            adapter,
            limits,
            pipelines: Mutex::new(HashMap::new()),
            tuned: Mutex::new(HashMap::new()),
            scratch: Mutex::new(HashMap::new()),
            compile_observer: Mutex::new(None),
            policy: Policy::default(),
        }
    }

    /// Calls `observer(kernel, built_so_far)` before each pipeline this context builds: building compiles the
    /// kernel for the adapter, which takes seconds per kernel on a software adapter the first time (drivers
    /// cache the result on disk), so a command can say what it is waiting for.
    pub fn on_compile(&self, observer: CompileObserver) {
        if let Ok(mut slot) = self.compile_observer.lock() {
            *slot = Some(observer);
        }
    }

    /// The algorithm policy the ops follow (the default unless set with [`Context::set_policy`]).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// Sets the algorithm policy for all work recorded afterwards (recorded programs keep their kernels).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }
    /// [`Context::set_policy`], by value.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }
    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// A choice measured earlier on this adapter under `key` (see `ops::conv` for the conv tiles).
    pub fn tuned(&self, key: &str) -> Option<Vec<u32>> {
        self.tuned.lock().ok().and_then(|m| m.get(key).cloned())
    }

    /// A scratch tensor of `shape` in the buffer kept under `name`, grown (replaced by a larger one) when
    /// too small. For intermediates that an op writes and reads back within its own dispatches (the
    /// Winograd transforms): every op records in order on one queue, so ops may share the buffer. A
    /// recording made before a growth keeps the older buffer alive, so it stays valid.
    pub(crate) fn scratch(&self, name: &'static str, shape: [usize; 4]) -> Result<Tensor> {
        let want = shape.iter().product::<usize>().max(1);
        let mut map = self.scratch.lock().map_err(|_| Error::InvalidParam {
            op: "scratch",
            message: "scratch pool poisoned by an earlier panic".into(),
        })?;
        if let Some(t) = map.get(name) {
            if t.numel() >= want {
                return Ok(t.view(shape));
            }
        }
        let t = self.tensor(name, [1, 1, 1, want])?;
        map.insert(name, t.clone());
        Ok(t.view(shape))
    }

    /// Records a measured choice so later calls with the same `key` reuse it.
    pub fn set_tuned(&self, key: &str, choice: Vec<u32>) {
        if let Ok(mut m) = self.tuned.lock() {
            m.insert(key.to_string(), choice);
        }
    }

    /// Every measured choice so far (key, value), sorted by key: for reports and for saving.
    pub fn tuned_all(&self) -> Vec<(String, Vec<u32>)> {
        let mut all: Vec<_> =
            self.tuned.lock().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        all.sort();
        all
    }

    /// The largest number of bytes one storage binding may hold on this device.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// The pipeline for `kernel` specialised with `constants` (WGSL `override`s), built once and cached.
    /// Creation runs inside validation and internal error scopes so a bad shader is a typed error.
    fn pipeline(&self, kernel: Kernel, constants: &[(&'static str, f64)]) -> Result<Arc<CachedPipeline>> {
        let key: PipelineKey = (kernel, constants.iter().map(|(n, v)| (*n, v.to_bits())).collect());
        let mut cache = self.pipelines.lock().map_err(|_| Error::Kernel {
            kernel: kernel.name(),
            message: "pipeline cache poisoned by an earlier panic".into(),
        })?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        if let Ok(observer) = self.compile_observer.lock() {
            if let Some(f) = observer.as_ref() {
                f(kernel.name(), cache.len());
            }
        }
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel.name()),
            source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.name()),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let internal_err = pollster::block_on(internal.pop());
        let validation_err = pollster::block_on(validation.pop());
        if let Some(e) = validation_err.or(internal_err) {
            return Err(Error::Kernel { kernel: kernel.name(), message: e.to_string() });
        }
        let layout = pipeline.get_bind_group_layout(0);
        let cached = Arc::new(CachedPipeline { pipeline, layout });
        cache.insert(key, cached.clone());
        Ok(cached)
    }

    /// Builds every kernel's pipeline (with default constants) so the first real dispatch is not
    /// slowed by compilation, and so a broken shader is reported up front.
    pub fn warm_up(&self) -> Result<()> {
        for &k in Kernel::ALL {
            if self.device.features().contains(k.required_features()) {
                self.pipeline(k, &[])?;
            }
        }
        Ok(())
    }

    /// Starts recording a batch of GPU work (encoded into one command encoder and submitted once).
    pub fn recorder(&self, label: &str) -> Recorder<'_> {
        // The scopes cover bind-group creation, encoding, `finish` and `submit`: wgpu reports encoder
        // errors at `finish`, so a scope around `submit` alone would miss them.
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        Recorder { ctx: self, steps: Vec::new(), label: label.to_string(), scopes: Some((validation, oom)) }
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu { op: "wait".into(), message: e.to_string() })
    }
}

/// One recorded piece of GPU work. A dispatch keeps its pipeline, bind group and parameter buffer, so
/// a recorded [`Program`] can be replayed with no allocation at all.
#[derive(Clone, Debug)]
enum Step {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        groups: [u32; 3],
    },
    Copy {
        src: wgpu::Buffer,
        src_offset: u64,
        dst: wgpu::Buffer,
        dst_offset: u64,
        bytes: u64,
    },
    Clear {
        buffer: wgpu::Buffer,
    },
    /// A label starting a new segment (see [`Program::segments`]); encodes nothing.
    Mark(String),
}

/// A recorded sequence of dispatches, copies and clears over fixed buffers, replayable any number of
/// times ([`Recorder::replay`]): how networks run a forward or training step without re-creating bind
/// groups or parameter buffers. Parameter values are frozen at recording time.
#[derive(Clone, Debug, Default)]
pub struct Program {
    steps: Vec<Step>,
}

impl Program {
    /// Number of recorded steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
    /// Number of kernel dispatches.
    pub fn dispatches(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s, Step::Dispatch { .. })).count()
    }

    /// Appends another program's steps.
    pub fn extend(&mut self, other: &Program) {
        self.steps.extend(other.steps.iter().cloned());
    }

    /// The program cut at its marks ([`Recorder::mark`]): (label, steps up to the next mark), in order;
    /// steps before the first mark are labelled "". Used to time a network layer by layer.
    pub fn segments(&self) -> Vec<(String, Program)> {
        let mut out: Vec<(String, Program)> = Vec::new();
        for step in &self.steps {
            match step {
                Step::Mark(label) => out.push((label.clone(), Program::default())),
                other => {
                    if out.is_empty() {
                        out.push((String::new(), Program::default()));
                    }
                    if let Some((_, p)) = out.last_mut() {
                        p.steps.push(other.clone());
                    }
                }
            }
        }
        out
    }
}

/// Records GPU work, then either submits it ([`Recorder::submit`]) or keeps it as a [`Program`]
/// ([`Recorder::finish_program`]). It holds (thread-local) error scopes from creation to submit, so
/// recorders on one thread must be finished in the reverse order of their creation (in practice: one at a
/// time).
pub struct Recorder<'a> {
    ctx: &'a Context,
    steps: Vec<Step>,
    label: String,
    scopes: Option<(wgpu::ErrorScopeGuard, wgpu::ErrorScopeGuard)>,
}

impl<'a> Recorder<'a> {
    pub fn context(&self) -> &'a Context {
        self.ctx
    }

    /// Records one dispatch of `kernel`: `params` (the kernel's own parameter struct, see
    /// [`Kernel::params`]) goes to binding 0 as a uniform, `buffers` to bindings 1.. in order. `workgroups` is checked against the device limit.
    pub fn dispatch<P: GpuParams>(
        &mut self,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
        params: &P,
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Result<()> {
        if kernel.params().type_id != std::any::TypeId::of::<P>() {
            return Err(Error::Kernel {
                kernel: kernel.name(),
                message: format!("takes {} parameters, was given {}", kernel.params().name, P::NAME),
            });
        }
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&g| g > max) {
            return Err(Error::InvalidParam {
                op: kernel.name(),
                message: format!(
                    "needs {workgroups:?} workgroups, but adapter `{}` allows at most {max} per dimension; use a smaller input",
                    self.ctx.adapter.name
                ),
            });
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        let pipeline = self.ctx.pipeline(kernel, constants)?;
        let uniform = self.ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(kernel.name()),
            contents: bytemuck::bytes_of(params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries = Vec::with_capacity(buffers.len() + 1);
        entries.push(wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() });
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
        }
        let bind_group = self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name()),
            layout: &pipeline.layout,
            entries: &entries,
        });
        self.steps.push(Step::Dispatch { pipeline: pipeline.pipeline.clone(), bind_group, groups: workgroups });
        Ok(())
    }

    /// Copies `bytes` bytes between buffers (offsets and size multiples of 4).
    pub fn copy(&mut self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, dst_offset: u64, bytes: u64) {
        if bytes > 0 {
            self.steps.push(Step::Copy { src: src.clone(), src_offset, dst: dst.clone(), dst_offset, bytes });
        }
    }

    /// Zeroes a whole buffer.
    pub fn clear(&mut self, buffer: &wgpu::Buffer) {
        self.steps.push(Step::Clear { buffer: buffer.clone() });
    }

    /// Starts a new labelled segment (a layer, say); costs nothing when the work runs.
    pub fn mark(&mut self, label: &str) {
        self.steps.push(Step::Mark(label.to_string()));
    }

    /// Appends a recorded program.
    pub fn replay(&mut self, program: &Program) {
        self.steps.extend(program.steps.iter().cloned());
    }

    /// Pops the error scopes: validation or out-of-memory errors raised while recording (or submitting)
    /// become `Error::Gpu` naming the recorder's label.
    fn check_scopes(&mut self) -> Result<()> {
        if let Some((validation, oom)) = self.scopes.take() {
            let v = pollster::block_on(validation.pop());
            let o = pollster::block_on(oom.pop());
            if let Some(e) = v.or(o) {
                return Err(Error::Gpu { op: self.label.clone(), message: e.to_string() });
            }
        }
        Ok(())
    }

    /// Keeps the recorded work as a replayable [`Program`] instead of submitting it.
    pub fn finish_program(mut self) -> Result<Program> {
        self.check_scopes()?;
        Ok(Program { steps: std::mem::take(&mut self.steps) })
    }

    /// Encodes everything recorded (consecutive dispatches share one compute pass) and submits it.
    fn encode_and_submit(&self) {
        let mut encoder =
            self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(&self.label) });
        let mut i = 0;
        while i < self.steps.len() {
            match &self.steps[i] {
                Step::Dispatch { .. } => {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&self.label),
                        timestamp_writes: None,
                    });
                    loop {
                        match self.steps.get(i) {
                            Some(Step::Dispatch { pipeline, bind_group, groups }) => {
                                pass.set_pipeline(pipeline);
                                pass.set_bind_group(0, bind_group, &[]);
                                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                            }
                            Some(Step::Mark(_)) => {}
                            _ => break,
                        }
                        i += 1;
                    }
                }
                Step::Copy { src, src_offset, dst, dst_offset, bytes } => {
                    encoder.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *bytes);
                    i += 1;
                }
                Step::Clear { buffer } => {
                    encoder.clear_buffer(buffer, 0, None);
                    i += 1;
                }
                Step::Mark(_) => i += 1,
            }
        }
        self.ctx.queue.submit(Some(encoder.finish()));
    }

    /// Submits everything recorded and waits for it to finish. GPU-side validation and out-of-memory
    /// errors become `Error::Gpu` naming the recorder's label.
    pub fn submit(mut self) -> Result<()> {
        self.encode_and_submit();
        self.check_scopes()?;
        self.ctx.wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(device_type: wgpu::DeviceType) -> AdapterSummary {
        AdapterSummary {
            name: "test".into(),
            backend: "Vulkan".into(),
            device_type: format!("{device_type:?}"),
            driver: String::new(),
            max_buffer_size: 1 << 30,
            max_storage_buffer_binding_size: 1 << 30,
            max_compute_workgroup_storage_size: 16384,
            max_compute_invocations_per_workgroup: 256,
            max_compute_workgroups_per_dimension: 65535,
            subgroup_min_size: 8,
        }
    }

    /// A CPU driver is filled by a few workgroups per core, a GPU of any kind asks for 256.
    #[test]
    fn workgroups_to_fill_follow_the_device_type() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(summary(wgpu::DeviceType::Cpu).workgroups_to_fill(), 8 * cores);
        for gpu in [wgpu::DeviceType::DiscreteGpu, wgpu::DeviceType::IntegratedGpu, wgpu::DeviceType::VirtualGpu] {
            assert_eq!(summary(gpu).workgroups_to_fill(), 256, "{gpu:?}");
        }
    }
}
