//! Loading a job plugin library and presenting its C table to the engine as plain trait objects.

use super::abi::{
    bytes, encode_conf, panic_message, EntryFn, FingerprintInfo, HostContext, HostEmitter,
    HostValues, OwnedBuf, PluginTable, ENTRY_SYMBOL, STATUS_OK,
};
use super::{
    Emitter, JobConf, JobDefinition, KeyComparator, Mapper, Partitioner, Reducer, TaskContext,
    TaskError, ValueIter,
};
use std::cmp::Ordering;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a plugin library was refused.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No file at the path.
    #[error("plugin {path}: no such file")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The file is not a loadable shared library.
    #[error("plugin {path}: not a loadable library: {reason}")]
    NotALibrary {
        /// The path given.
        path: PathBuf,
        /// The dynamic loader's message.
        reason: String,
    },
    /// The library does not export the entry point.
    #[error(
        "plugin {path}: no `{symbol}` symbol (is it a sheaf plugin built with `sheaf_plugin!`?)"
    )]
    MissingSymbol {
        /// The path given.
        path: PathBuf,
        /// The symbol looked for.
        symbol: &'static str,
    },
    /// The entry point returned no table (the job's constructor panicked).
    #[error("plugin {path}: its entry point failed (the job constructor panicked; see stderr)")]
    EntryFailed {
        /// The path given.
        path: PathBuf,
    },
    /// The plugin was built by another ABI, sheaf version, compiler or for another target.
    #[error("plugin {path} is incompatible: this sheaf expects [{expected}] but the plugin was built with [{found}] (rebuild the plugin against this sheaf-mapreduce)")]
    Fingerprint {
        /// The path given.
        path: PathBuf,
        /// This binary's fingerprint.
        expected: Box<FingerprintInfo>,
        /// The plugin's fingerprint.
        found: Box<FingerprintInfo>,
    },
    /// A call made while loading failed.
    #[error("plugin {path}: {message}")]
    Call {
        /// The path given.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// Loads plugin libraries. Loaded libraries are never unloaded (their code may still be running
/// in another task, and `dlclose` of Rust code with thread-locals is unsound).
pub struct PluginLibrary;

impl PluginLibrary {
    /// Loads the plugin at `path`, checks its fingerprint and returns its job.
    pub fn load(path: &Path) -> Result<Arc<dyn JobDefinition>, PluginError> {
        let owned = path.to_path_buf();
        if !path.exists() {
            return Err(PluginError::NotFound { path: owned });
        }
        let lib = open_library(path).map_err(|e| PluginError::NotALibrary {
            path: owned.clone(),
            reason: e.to_string(),
        })?;
        // Leaked on purpose: see the type's doc.
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        // SAFETY: the symbol's type is fixed by the ABI; a library exporting this name with
        // another type is outside what the fingerprint check below can catch.
        let entry: EntryFn = unsafe {
            match lib.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) {
                Ok(sym) => *sym,
                Err(_) => {
                    return Err(PluginError::MissingSymbol {
                        path: owned,
                        symbol: ENTRY_SYMBOL,
                    })
                }
            }
        };
        // SAFETY: calling the plugin's entry point; it catches its own panics.
        let table = unsafe { entry() };
        // SAFETY: a non-null table from the entry point is 'static in the never-unloaded library.
        unsafe { LoadedJob::from_table(table, &owned) }
            .map(|job| Arc::new(job) as Arc<dyn JobDefinition>)
    }
}

#[cfg(unix)]
fn open_library(path: &Path) -> Result<libloading::Library, libloading::Error> {
    // RTLD_NOW: unresolved symbols fail the load, not a task halfway through.
    // SAFETY: loading runs the library's initialisers; loading a plugin is trusting it.
    unsafe {
        libloading::os::unix::Library::open(
            Some(path),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    }
    .map(libloading::Library::from)
}

#[cfg(not(unix))]
fn open_library(path: &Path) -> Result<libloading::Library, libloading::Error> {
    // SAFETY: loading runs the library's initialisers; loading a plugin is trusting it.
    unsafe { libloading::Library::new(path) }
}

/// Copies a plugin-allocated buffer and gives it back to the plugin to free.
fn take_buf(table: &PluginTable, buf: OwnedBuf) -> Vec<u8> {
    if buf.ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: the plugin filled `buf` with a live allocation of `len` bytes.
    let copy = unsafe { bytes(buf.ptr, buf.len) }.to_vec();
    // SAFETY: returned to the allocator that made it, once.
    unsafe { (table.free_buf)(buf) };
    copy
}

/// Turns a call's status into a result; an error the host stashed during the call (the root
/// cause, e.g. a failed write behind `emit`) wins over the plugin's message.
fn call_result(
    table: &PluginTable,
    status: i32,
    err: OwnedBuf,
    stashed: Option<TaskError>,
) -> Result<(), TaskError> {
    let msg = take_buf(table, err);
    if status == STATUS_OK {
        return Ok(());
    }
    if let Some(e) = stashed {
        return Err(e);
    }
    if msg.is_empty() {
        return Err(TaskError::new(format!(
            "plugin call failed with status {status}"
        )));
    }
    Err(TaskError(String::from_utf8_lossy(&msg).into_owned()))
}

/// A job whose code lives in a plugin; what [`PluginLibrary::load`] returns.
pub struct LoadedJob {
    table: &'static PluginTable,
    name: String,
    default_conf: JobConf,
}

impl LoadedJob {
    /// Wraps a plugin table after checking its fingerprint; `origin` names it in errors.
    ///
    /// # Safety
    /// `table` must be null or point to a table that lives for the rest of the process.
    pub unsafe fn from_table(
        table: *const PluginTable,
        origin: &Path,
    ) -> Result<Self, PluginError> {
        let path = origin.to_path_buf();
        if table.is_null() {
            return Err(PluginError::EntryFailed { path });
        }
        // SAFETY: non-null and 'static by the caller's contract.
        let table: &'static PluginTable = unsafe { &*table };
        // SAFETY: the fingerprint is the frozen first field of every table version.
        let found = unsafe { FingerprintInfo::read(&table.fingerprint) };
        let expected = FingerprintInfo::current();
        if found != expected {
            return Err(PluginError::Fingerprint {
                path,
                expected: Box::new(expected),
                found: Box::new(found),
            });
        }
        let mut out = OwnedBuf::empty();
        // SAFETY: fingerprint matched, so the table has this layout.
        let status = unsafe { (table.job_name)(table.job, &mut out) };
        let raw = take_buf(table, out);
        if status != STATUS_OK {
            return Err(PluginError::Call {
                path,
                message: String::from_utf8_lossy(&raw).into_owned(),
            });
        }
        let name = String::from_utf8_lossy(&raw).into_owned();
        let mut out = OwnedBuf::empty();
        // SAFETY: as above.
        let status = unsafe { (table.default_conf)(table.job, &mut out) };
        let raw = take_buf(table, out);
        if status != STATUS_OK {
            return Err(PluginError::Call {
                path,
                message: String::from_utf8_lossy(&raw).into_owned(),
            });
        }
        let default_conf = rmp_serde::from_slice(&raw).map_err(|e| PluginError::Call {
            path: path.clone(),
            message: format!("bad default conf: {e}"),
        })?;
        Ok(LoadedJob {
            table,
            name,
            default_conf,
        })
    }

    fn create(
        &self,
        factory: super::abi::FactoryFn,
        conf: &JobConf,
    ) -> Result<*mut c_void, TaskError> {
        let encoded = encode_conf(conf)?;
        let mut obj: *mut c_void = std::ptr::null_mut();
        let mut err = OwnedBuf::empty();
        // SAFETY: a factory of this table with the table's own job pointer and valid out-slots.
        let status = unsafe {
            factory(
                self.table.job,
                encoded.as_ptr(),
                encoded.len(),
                &mut obj,
                &mut err,
            )
        };
        call_result(self.table, status, err, None)?;
        Ok(obj)
    }
}

impl JobDefinition for LoadedJob {
    fn new_mapper(&self, conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError> {
        let obj = self.create(self.table.new_mapper, conf)?;
        if obj.is_null() {
            return Err(TaskError::new("plugin returned no mapper"));
        }
        Ok(Box::new(PluginMapper {
            table: self.table,
            obj,
        }))
    }

    fn new_reducer(&self, conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError> {
        let obj = self.create(self.table.new_reducer, conf)?;
        if obj.is_null() {
            return Err(TaskError::new("plugin returned no reducer"));
        }
        Ok(Box::new(PluginReducer {
            table: self.table,
            obj,
        }))
    }

    fn new_combiner(&self, conf: &JobConf) -> Result<Option<Box<dyn Reducer>>, TaskError> {
        if !super::combiner_enabled(conf) {
            return Ok(None);
        }
        let obj = self.create(self.table.new_combiner, conf)?;
        Ok((!obj.is_null()).then(|| {
            Box::new(PluginReducer {
                table: self.table,
                obj,
            }) as Box<dyn Reducer>
        }))
    }

    fn partitioner(&self, conf: &JobConf) -> Result<Option<Box<dyn Partitioner>>, TaskError> {
        let obj = self.create(self.table.new_partitioner, conf)?;
        Ok((!obj.is_null()).then(|| {
            Box::new(PluginPartitioner {
                table: self.table,
                obj,
            }) as Box<dyn Partitioner>
        }))
    }

    fn comparator(&self, conf: &JobConf) -> Result<Option<Box<dyn KeyComparator>>, TaskError> {
        let obj = self.create(self.table.new_comparator, conf)?;
        Ok((!obj.is_null()).then(|| {
            Box::new(PluginComparator {
                table: self.table,
                obj,
            }) as Box<dyn KeyComparator>
        }))
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn default_conf(&self) -> JobConf {
        self.default_conf.clone()
    }
}

/// Host state behind `HostEmitter::ctx` for one call.
struct EmitSlot<'a> {
    out: &'a mut dyn Emitter,
    error: Option<TaskError>,
}

unsafe extern "C" fn host_emit(
    ctx: *mut c_void,
    k: *const u8,
    kl: usize,
    v: *const u8,
    vl: usize,
) -> i32 {
    // SAFETY: `ctx` is the `EmitSlot` of the call in progress; key and value are valid for it.
    let (slot, key, value) =
        unsafe { (&mut *(ctx as *mut EmitSlot<'_>), bytes(k, kl), bytes(v, vl)) };
    match catch_unwind(AssertUnwindSafe(|| slot.out.emit(key, value))) {
        Ok(Ok(())) => STATUS_OK,
        Ok(Err(e)) => {
            slot.error = Some(e);
            1
        }
        Err(p) => {
            slot.error = Some(TaskError::new(format!(
                "engine panicked in emit: {}",
                panic_message(p.as_ref())
            )));
            2
        }
    }
}

/// Host state behind `HostContext::ctx` for one call.
struct ContextSlot<'a> {
    ctx: &'a mut dyn TaskContext,
}

unsafe extern "C" fn host_incr_counter(
    ctx: *mut c_void,
    g: *const u8,
    gl: usize,
    n: *const u8,
    nl: usize,
    amount: i64,
) {
    // SAFETY: `ctx` is the `ContextSlot` of the call in progress; names are valid for it.
    let (slot, group, name) = unsafe {
        (
            &mut *(ctx as *mut ContextSlot<'_>),
            bytes(g, gl),
            bytes(n, nl),
        )
    };
    let group = String::from_utf8_lossy(group);
    let name = String::from_utf8_lossy(name);
    // A panicking counter sink loses one increment rather than aborting the process.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        slot.ctx.incr_counter(&group, &name, amount)
    }));
}

/// Host state behind `HostValues::ctx` for one reduce call.
struct ValuesSlot<'a> {
    values: &'a mut dyn ValueIter,
    error: Option<TaskError>,
}

unsafe extern "C" fn host_next_value(
    ctx: *mut c_void,
    out: *mut *const u8,
    out_len: *mut usize,
) -> i32 {
    // SAFETY: `ctx` is the `ValuesSlot` of the reduce call in progress.
    let slot = unsafe { &mut *(ctx as *mut ValuesSlot<'_>) };
    let values = &mut *slot.values;
    match catch_unwind(AssertUnwindSafe(|| {
        values.next_value().map(|v| (v.as_ptr(), v.len()))
    })) {
        Ok(Some((ptr, len))) => {
            // SAFETY: the plugin passes writable out-slots.
            unsafe {
                *out = ptr;
                *out_len = len;
            }
            1
        }
        Ok(None) => 0,
        Err(p) => {
            slot.error = Some(TaskError::new(format!(
                "engine panicked reading values: {}",
                panic_message(p.as_ref())
            )));
            -1
        }
    }
}

/// A plugin mapper.
struct PluginMapper {
    table: &'static PluginTable,
    obj: *mut c_void,
}

// SAFETY: the plugin-side object is a `Box<dyn Mapper>` and `Mapper: Send`.
unsafe impl Send for PluginMapper {}

impl Mapper for PluginMapper {
    #[inline]
    fn map(
        &mut self,
        key: &[u8],
        value: &[u8],
        out: &mut dyn Emitter,
        ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        let mut emit = EmitSlot { out, error: None };
        let mut cx = ContextSlot { ctx };
        let em = HostEmitter {
            ctx: &mut emit as *mut EmitSlot<'_> as *mut c_void,
            emit: host_emit,
        };
        let hc = HostContext {
            ctx: &mut cx as *mut ContextSlot<'_> as *mut c_void,
            incr_counter: host_incr_counter,
        };
        let mut err = OwnedBuf::empty();
        // SAFETY: live object of this table; every pointer is valid for the call.
        let status = unsafe {
            (self.table.mapper_map)(
                self.obj,
                key.as_ptr(),
                key.len(),
                value.as_ptr(),
                value.len(),
                &em,
                &hc,
                &mut err,
            )
        };
        if status == STATUS_OK && err.ptr.is_null() {
            return Ok(());
        }
        call_result(self.table, status, err, emit.error)
    }

    fn cleanup(
        &mut self,
        out: &mut dyn Emitter,
        ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        let mut emit = EmitSlot { out, error: None };
        let mut cx = ContextSlot { ctx };
        let em = HostEmitter {
            ctx: &mut emit as *mut EmitSlot<'_> as *mut c_void,
            emit: host_emit,
        };
        let hc = HostContext {
            ctx: &mut cx as *mut ContextSlot<'_> as *mut c_void,
            incr_counter: host_incr_counter,
        };
        let mut err = OwnedBuf::empty();
        // SAFETY: as in `map`.
        let status = unsafe { (self.table.mapper_cleanup)(self.obj, &em, &hc, &mut err) };
        call_result(self.table, status, err, emit.error)
    }
}

impl Drop for PluginMapper {
    fn drop(&mut self) {
        // SAFETY: the object is live and dropped exactly once, here.
        unsafe { (self.table.mapper_drop)(self.obj) }
    }
}

/// A plugin reducer or combiner.
struct PluginReducer {
    table: &'static PluginTable,
    obj: *mut c_void,
}

// SAFETY: the plugin-side object is a `Box<dyn Reducer>` and `Reducer: Send`.
unsafe impl Send for PluginReducer {}

impl Reducer for PluginReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueIter,
        out: &mut dyn Emitter,
        ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        let mut vals = ValuesSlot {
            values,
            error: None,
        };
        let mut emit = EmitSlot { out, error: None };
        let mut cx = ContextSlot { ctx };
        let hv = HostValues {
            ctx: &mut vals as *mut ValuesSlot<'_> as *mut c_void,
            next: host_next_value,
        };
        let em = HostEmitter {
            ctx: &mut emit as *mut EmitSlot<'_> as *mut c_void,
            emit: host_emit,
        };
        let hc = HostContext {
            ctx: &mut cx as *mut ContextSlot<'_> as *mut c_void,
            incr_counter: host_incr_counter,
        };
        let mut err = OwnedBuf::empty();
        // SAFETY: live object of this table; every pointer is valid for the call.
        let status = unsafe {
            (self.table.reducer_reduce)(self.obj, key.as_ptr(), key.len(), &hv, &em, &hc, &mut err)
        };
        // A host failure while iterating values is an error even if the reducer shrugged it off.
        if let Some(e) = vals.error {
            let _ = take_buf(self.table, err);
            return Err(e);
        }
        call_result(self.table, status, err, emit.error)
    }

    fn cleanup(
        &mut self,
        out: &mut dyn Emitter,
        ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        let mut emit = EmitSlot { out, error: None };
        let mut cx = ContextSlot { ctx };
        let em = HostEmitter {
            ctx: &mut emit as *mut EmitSlot<'_> as *mut c_void,
            emit: host_emit,
        };
        let hc = HostContext {
            ctx: &mut cx as *mut ContextSlot<'_> as *mut c_void,
            incr_counter: host_incr_counter,
        };
        let mut err = OwnedBuf::empty();
        // SAFETY: as in `reduce`.
        let status = unsafe { (self.table.reducer_cleanup)(self.obj, &em, &hc, &mut err) };
        call_result(self.table, status, err, emit.error)
    }
}

impl Drop for PluginReducer {
    fn drop(&mut self) {
        // SAFETY: the object is live and dropped exactly once, here.
        unsafe { (self.table.reducer_drop)(self.obj) }
    }
}

/// A plugin partitioner. `Partitioner::partition` cannot return an error, so a plugin failure
/// (or an out-of-range partition) panics on the host side with the plugin's message; the engine
/// runs tasks under `catch_unwind` and fails the attempt with it.
struct PluginPartitioner {
    table: &'static PluginTable,
    obj: *mut c_void,
}

// SAFETY: the plugin-side object is a `Box<dyn Partitioner>` and `Partitioner: Send + Sync`.
unsafe impl Send for PluginPartitioner {}
// SAFETY: see `Send`.
unsafe impl Sync for PluginPartitioner {}

impl Partitioner for PluginPartitioner {
    fn partition(&self, key: &[u8], value: &[u8], num_partitions: u32) -> u32 {
        let mut out = 0u32;
        let mut err = OwnedBuf::empty();
        // SAFETY: live object of this table; every pointer is valid for the call.
        let status = unsafe {
            (self.table.partitioner_partition)(
                self.obj,
                key.as_ptr(),
                key.len(),
                value.as_ptr(),
                value.len(),
                num_partitions,
                &mut out,
                &mut err,
            )
        };
        if let Err(e) = call_result(self.table, status, err, None) {
            std::panic::panic_any(e.0);
        }
        if out >= num_partitions.max(1) {
            std::panic::panic_any(format!(
                "plugin partitioner returned partition {out} of {num_partitions}"
            ));
        }
        out
    }
}

impl Drop for PluginPartitioner {
    fn drop(&mut self) {
        // SAFETY: the object is live and dropped exactly once, here.
        unsafe { (self.table.partitioner_drop)(self.obj) }
    }
}

/// A plugin key comparator; failures panic on the host side like [`PluginPartitioner`].
struct PluginComparator {
    table: &'static PluginTable,
    obj: *mut c_void,
}

// SAFETY: the plugin-side object is a `Box<dyn KeyComparator>` and it is `Send + Sync`.
unsafe impl Send for PluginComparator {}
// SAFETY: see `Send`.
unsafe impl Sync for PluginComparator {}

impl KeyComparator for PluginComparator {
    fn compare(&self, a: &[u8], b: &[u8]) -> Ordering {
        let mut out = 0i32;
        let mut err = OwnedBuf::empty();
        // SAFETY: live object of this table; every pointer is valid for the call.
        let status = unsafe {
            (self.table.comparator_compare)(
                self.obj,
                a.as_ptr(),
                a.len(),
                b.as_ptr(),
                b.len(),
                &mut out,
                &mut err,
            )
        };
        if let Err(e) = call_result(self.table, status, err, None) {
            std::panic::panic_any(e.0);
        }
        out.cmp(&0)
    }
}

impl Drop for PluginComparator {
    fn drop(&mut self) {
        // SAFETY: the object is live and dropped exactly once, here.
        unsafe { (self.table.comparator_drop)(self.obj) }
    }
}

#[cfg(test)]
mod tests {
    use super::super::abi::{PluginTable, ABI_VERSION};
    use super::*;
    use std::collections::BTreeMap;

    /// A compiled-in job driven through the C table in-process (no dlopen), so every ABI path
    /// (factories, map, reduce, values, counters, errors, panics) runs as it would for a plugin.
    #[derive(Default)]
    struct ProbeJob;

    struct ProbeMapper {
        seen: u64,
    }

    impl Mapper for ProbeMapper {
        fn map(
            &mut self,
            key: &[u8],
            value: &[u8],
            out: &mut dyn Emitter,
            ctx: &mut dyn TaskContext,
        ) -> Result<(), TaskError> {
            match value {
                b"panic" => panic!("probe panic at key {}", String::from_utf8_lossy(key)),
                b"fail" => return Err(TaskError::new("probe refused the record")),
                _ => {}
            }
            self.seen += 1;
            ctx.incr_counter("probe", "records", 1);
            let suffix = ctx.conf().get("probe.suffix").unwrap_or("").to_string();
            for word in value.split(|b| *b == b' ').filter(|w| !w.is_empty()) {
                let mut k = word.to_vec();
                k.extend_from_slice(suffix.as_bytes());
                out.emit(&k, b"1")?;
            }
            Ok(())
        }

        fn cleanup(
            &mut self,
            out: &mut dyn Emitter,
            _ctx: &mut dyn TaskContext,
        ) -> Result<(), TaskError> {
            out.emit(b"__seen", self.seen.to_string().as_bytes())
        }
    }

    struct SumReducer;

    impl Reducer for SumReducer {
        fn reduce(
            &mut self,
            key: &[u8],
            values: &mut dyn ValueIter,
            out: &mut dyn Emitter,
            _ctx: &mut dyn TaskContext,
        ) -> Result<(), TaskError> {
            if key == b"boom" {
                panic!("reducer exploded");
            }
            let mut sum = 0u64;
            while let Some(v) = values.next_value() {
                sum += crate::api::codec::parse_u64(v)?;
            }
            out.emit(key, sum.to_string().as_bytes())
        }
    }

    struct FirstBytePartitioner;

    impl Partitioner for FirstBytePartitioner {
        fn partition(&self, key: &[u8], _value: &[u8], n: u32) -> u32 {
            if key == b"panic" {
                panic!("partitioner exploded");
            }
            u32::from(key.first().copied().unwrap_or(0)) % n
        }
    }

    struct ReverseComparator;

    impl KeyComparator for ReverseComparator {
        fn compare(&self, a: &[u8], b: &[u8]) -> Ordering {
            b.cmp(a)
        }
    }

    impl JobDefinition for ProbeJob {
        fn new_mapper(&self, conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError> {
            if conf.get("probe.mapper") == Some("refuse") {
                return Err(TaskError::new("mapper factory refused"));
            }
            Ok(Box::new(ProbeMapper { seen: 0 }))
        }
        fn new_reducer(&self, _conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError> {
            Ok(Box::new(SumReducer))
        }
        fn new_combiner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Reducer>>, TaskError> {
            Ok(Some(Box::new(SumReducer)))
        }
        fn partitioner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Partitioner>>, TaskError> {
            Ok(Some(Box::new(FirstBytePartitioner)))
        }
        fn comparator(&self, _conf: &JobConf) -> Result<Option<Box<dyn KeyComparator>>, TaskError> {
            Ok(Some(Box::new(ReverseComparator)))
        }
        fn name(&self) -> &str {
            "probe"
        }
        fn default_conf(&self) -> JobConf {
            let mut c = JobConf::default();
            c.set("probe.default", "yes");
            c
        }
    }

    fn probe_job() -> LoadedJob {
        let table: &'static PluginTable =
            Box::leak(Box::new(PluginTable::for_job(Box::new(ProbeJob))));
        // SAFETY: the table is leaked, so it lives for the rest of the process.
        unsafe { LoadedJob::from_table(table, Path::new("in-process")) }.unwrap()
    }

    #[derive(Default)]
    struct Collect(Vec<(Vec<u8>, Vec<u8>)>);
    impl Emitter for Collect {
        fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), TaskError> {
            self.0.push((key.to_vec(), value.to_vec()));
            Ok(())
        }
    }

    struct FailingEmitter;
    impl Emitter for FailingEmitter {
        fn emit(&mut self, _key: &[u8], _value: &[u8]) -> Result<(), TaskError> {
            Err(TaskError::new("disk full"))
        }
    }

    struct Ctx {
        conf: JobConf,
        counters: BTreeMap<(String, String), i64>,
    }
    impl TaskContext for Ctx {
        fn conf(&self) -> &JobConf {
            &self.conf
        }
        fn incr_counter(&mut self, group: &str, name: &str, amount: i64) {
            *self
                .counters
                .entry((group.to_string(), name.to_string()))
                .or_default() += amount;
        }
    }

    struct Values(Vec<Vec<u8>>, usize);
    impl ValueIter for Values {
        fn next_value(&mut self) -> Option<&[u8]> {
            self.1 += 1;
            self.0.get(self.1 - 1).map(|v| v.as_slice())
        }
    }

    fn ctx() -> Ctx {
        let mut conf = JobConf::default();
        conf.set("probe.suffix", "!");
        Ctx {
            conf,
            counters: BTreeMap::new(),
        }
    }

    #[test]
    fn map_reduce_round_trip_through_the_table() {
        let job = probe_job();
        assert_eq!(job.name(), "probe");
        assert_eq!(job.default_conf().get("probe.default"), Some("yes"));
        let mut cx = ctx();
        let mut mapper = job.new_mapper(&cx.conf).unwrap();
        let mut out = Collect::default();
        mapper.map(b"0", b"a b\xff", &mut out, &mut cx).unwrap();
        mapper.map(b"4", b"", &mut out, &mut cx).unwrap();
        mapper.cleanup(&mut out, &mut cx).unwrap();
        assert_eq!(
            out.0,
            vec![
                (b"a!".to_vec(), b"1".to_vec()),
                (b"b\xff!".to_vec(), b"1".to_vec()),
                (b"__seen".to_vec(), b"2".to_vec())
            ]
        );
        assert_eq!(
            cx.counters[&("probe".to_string(), "records".to_string())],
            2
        );

        let mut reducer = job.new_reducer(&cx.conf).unwrap();
        let mut out = Collect::default();
        let mut values = Values(vec![b"3".to_vec(), b"4".to_vec(), b"5".to_vec()], 0);
        reducer
            .reduce(b"k", &mut values, &mut out, &mut cx)
            .unwrap();
        reducer.cleanup(&mut out, &mut cx).unwrap();
        assert_eq!(out.0, vec![(b"k".to_vec(), b"12".to_vec())]);
    }

    #[test]
    fn errors_and_panics_become_task_errors() {
        let job = probe_job();
        let mut cx = ctx();
        let mut mapper = job.new_mapper(&cx.conf).unwrap();
        let mut out = Collect::default();
        let err = mapper.map(b"7", b"fail", &mut out, &mut cx).unwrap_err();
        assert_eq!(err.0, "probe refused the record");
        let err = mapper.map(b"9", b"panic", &mut out, &mut cx).unwrap_err();
        assert_eq!(err.0, "plugin panicked: probe panic at key 9");
        // The mapper is still usable after a caught panic (the engine decides to fail the attempt).
        mapper.map(b"10", b"x", &mut out, &mut cx).unwrap();

        // A host emit failure surfaces as the host's own error, not the plugin's echo of it.
        let err = mapper
            .map(b"0", b"y", &mut FailingEmitter, &mut cx)
            .unwrap_err();
        assert_eq!(err.0, "disk full");

        let mut reducer = job.new_reducer(&cx.conf).unwrap();
        let err = reducer
            .reduce(b"boom", &mut Values(vec![], 0), &mut out, &mut cx)
            .unwrap_err();
        assert_eq!(err.0, "plugin panicked: reducer exploded");
        let err = reducer
            .reduce(b"k", &mut Values(vec![b"x".to_vec()], 0), &mut out, &mut cx)
            .unwrap_err();
        assert!(err.0.contains("not a decimal integer"), "{err}");

        let mut refuse = cx.conf.clone();
        refuse.set("probe.mapper", "refuse");
        assert_eq!(
            job.new_mapper(&refuse).err().unwrap().0,
            "mapper factory refused"
        );
    }

    #[test]
    fn partitioner_comparator_and_combiner_switch() {
        let job = probe_job();
        let conf = ctx().conf;
        let p = job.partitioner(&conf).unwrap().unwrap();
        assert_eq!(p.partition(b"a", b"", 10), u32::from(b'a') % 10);
        let panic = catch_unwind(AssertUnwindSafe(|| p.partition(b"panic", b"", 10))).unwrap_err();
        assert_eq!(
            panic_message(panic.as_ref()),
            "plugin panicked: partitioner exploded"
        );
        let c = job.comparator(&conf).unwrap().unwrap();
        assert_eq!(c.compare(b"a", b"b"), Ordering::Greater);
        assert_eq!(c.compare(b"b", b"b"), Ordering::Equal);
        assert!(job.new_combiner(&conf).unwrap().is_some());
        let mut off = conf.clone();
        off.set(crate::api::COMBINER_ENABLED_KEY, "false");
        assert!(job.new_combiner(&off).unwrap().is_none());
    }

    #[test]
    fn wrong_fingerprint_is_refused_naming_both() {
        let mut table = PluginTable::for_job(Box::new(ProbeJob));
        table.fingerprint.abi_version = ABI_VERSION + 41;
        table.fingerprint.rustc_version =
            super::super::abi::StrRef::from_static("rustc 0.0.1 (ancient)");
        let table: &'static PluginTable = Box::leak(Box::new(table));
        // SAFETY: leaked, lives forever.
        let err = unsafe { LoadedJob::from_table(table, Path::new("old.so")) }
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(matches!(err, PluginError::Fingerprint { .. }));
        assert!(msg.contains(&format!("ABI {ABI_VERSION},")), "{msg}");
        assert!(msg.contains(&format!("ABI {},", ABI_VERSION + 41)), "{msg}");
        assert!(msg.contains("rustc 0.0.1 (ancient)"), "{msg}");
        assert!(msg.contains(super::super::abi::RUSTC_VERSION), "{msg}");
        // SAFETY: null is allowed.
        let err = unsafe { LoadedJob::from_table(std::ptr::null(), Path::new("x.so")) }
            .err()
            .unwrap();
        assert!(matches!(err, PluginError::EntryFailed { .. }));
    }

    #[test]
    fn missing_and_non_library_files_are_refused() {
        let err = PluginLibrary::load(Path::new("/nonexistent/libnothing.so"))
            .err()
            .unwrap();
        assert!(matches!(err, PluginError::NotFound { .. }), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libfake.so");
        std::fs::write(&fake, b"this is not an ELF file").unwrap();
        let err = PluginLibrary::load(&fake).err().unwrap();
        assert!(matches!(err, PluginError::NotALibrary { .. }), "{err}");
        assert!(err.to_string().contains("libfake.so"), "{err}");
    }
}
