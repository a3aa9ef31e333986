//! Hadoop Streaming: mapper, combiner and reducer are shell commands (`sh -c CMD`) fed
//! tab-separated lines on stdin; their stdout lines are parsed back as `key\tvalue` records. It is
//! an ordinary [`JobDefinition`], so the same engine runs it.
//!
//! Each command runs as one child process per task (per spilled partition for combiners). Stdin
//! is written by a dedicated thread and stdout read by another, so a command that writes before
//! it has read all its input cannot deadlock the task; both channels are bounded, and the task
//! thread alternates between feeding input and emitting output.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{
    sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError,
};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::api::{
    Emitter, JobConf, JobDefinition, KeyComparator, Mapper, Partitioner, Reducer, TaskContext,
    TaskError, ValueIter,
};
use crate::formats::INPUT_FORMAT_KEY;

/// Hadoop's conf key for the map command.
pub const STREAM_MAPPER_KEY: &str = "stream.map.streamprocessor";
/// Hadoop's conf key for the combine command.
pub const STREAM_COMBINER_KEY: &str = "stream.combine.streamprocessor";
/// Hadoop's conf key for the reduce command.
pub const STREAM_REDUCER_KEY: &str = "stream.reduce.streamprocessor";

/// Bytes gathered before a chunk is handed to the stdin writer thread.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight in each direction (bounds memory at about 4 × 64 KiB per direction).
const CHANNEL_DEPTH: usize = 4;
/// How much of a command's stderr is kept for the failure message.
const STDERR_TAIL: usize = 2048;

/// A streaming job: the commands of each phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamingJob {
    /// Map command.
    pub mapper: String,
    /// Optional combine command.
    pub combiner: Option<String>,
    /// Reduce command; `None` passes records through unchanged (Hadoop's identity reducer).
    pub reducer: Option<String>,
}

impl StreamingJob {
    /// Records the commands in `conf` under Hadoop's streaming keys (for job history and tasks).
    pub fn store_in_conf(&self, conf: &mut JobConf) {
        conf.set(STREAM_MAPPER_KEY, self.mapper.clone());
        if let Some(c) = &self.combiner {
            conf.set(STREAM_COMBINER_KEY, c.clone());
        }
        if let Some(r) = &self.reducer {
            conf.set(STREAM_REDUCER_KEY, r.clone());
        }
    }
}

impl JobDefinition for StreamingJob {
    fn new_mapper(&self, conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError> {
        // Like Hadoop: with line input the byte-offset key is not passed to the command.
        let with_key = !matches!(conf.get(INPUT_FORMAT_KEY), None | Some("text"));
        Ok(Box::new(StreamingMapper {
            process: StreamProcess::spawn(&self.mapper, conf)?,
            with_key,
        }))
    }

    fn new_reducer(&self, conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError> {
        Ok(match &self.reducer {
            Some(cmd) => Box::new(StreamingReducer {
                process: StreamProcess::spawn(cmd, conf)?,
            }),
            None => Box::new(IdentityReducer),
        })
    }

    fn new_combiner(&self, conf: &JobConf) -> Result<Option<Box<dyn Reducer>>, TaskError> {
        match &self.combiner {
            Some(cmd) => Ok(Some(Box::new(StreamingReducer {
                process: StreamProcess::spawn(cmd, conf)?,
            }))),
            None => Ok(None),
        }
    }

    fn partitioner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Partitioner>>, TaskError> {
        Ok(None)
    }

    fn comparator(&self, _conf: &JobConf) -> Result<Option<Box<dyn KeyComparator>>, TaskError> {
        Ok(None)
    }
}

/// Emits every value of a group under its key.
struct IdentityReducer;

impl Reducer for IdentityReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueIter,
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        while let Some(v) = values.next_value() {
            out.emit(key, v)?;
        }
        Ok(())
    }
}

struct StreamingMapper {
    process: StreamProcess,
    with_key: bool,
}

impl Mapper for StreamingMapper {
    fn map(
        &mut self,
        key: &[u8],
        value: &[u8],
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        let key = self.with_key.then_some(key);
        self.process.write_line(key, value, out)
    }

    fn cleanup(
        &mut self,
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        self.process.finish(out)
    }
}

struct StreamingReducer {
    process: StreamProcess,
}

impl Reducer for StreamingReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueIter,
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        while let Some(v) = values.next_value() {
            self.process.buffer_line(Some(key), v);
            if self.process.pending.len() >= CHUNK {
                // `values` borrows the merge; copy nothing, just hand over the full chunk.
                self.process.send_pending(out)?;
            }
        }
        Ok(())
    }

    fn cleanup(
        &mut self,
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        self.process.finish(out)
    }
}

/// One running command with its stdin writer, stdout reader and stderr collector threads.
struct StreamProcess {
    command: String,
    child: Child,
    input: Option<SyncSender<Vec<u8>>>,
    output: Option<Receiver<std::io::Result<Vec<u8>>>>,
    writer: Option<JoinHandle<()>>,
    reader: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    pending: Vec<u8>,
    /// An output line not yet terminated by `\n`.
    carry: Vec<u8>,
    finished: bool,
}

fn spawn_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, TaskError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| TaskError::new(format!("starting a streaming thread: {e}")))
}

fn write_input(mut stdin: ChildStdin, chunks: Receiver<Vec<u8>>) {
    for chunk in chunks {
        if stdin.write_all(&chunk).is_err() {
            // The command closed its stdin (e.g. `head`): drop further input, its exit status
            // decides whether the task failed.
            return;
        }
    }
    // Dropping stdin sends EOF.
}

impl StreamProcess {
    fn spawn(command: &str, conf: &JobConf) -> Result<Self, TaskError> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a failed task can stop a whole pipeline (`a | b`).
            .process_group(0);
        // Like Hadoop Streaming, the job configuration is visible as environment variables with
        // non-alphanumeric characters turned into underscores.
        for (k, v) in &conf.entries {
            let name: String = k
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            if !v.contains('\0') {
                cmd.env(name, v);
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            TaskError::new(format!("cannot start streaming command `{command}`: {e}"))
        })?;
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(TaskError::new("streaming command pipes were not created"));
                }
            };
        let (in_tx, in_rx) = sync_channel::<Vec<u8>>(CHANNEL_DEPTH);
        let (out_tx, out_rx) = sync_channel::<std::io::Result<Vec<u8>>>(CHANNEL_DEPTH);
        let writer = spawn_thread("sheaf-stream-in", move || write_input(stdin, in_rx))?;
        let reader = spawn_thread("sheaf-stream-out", move || {
            let mut stdout = stdout;
            loop {
                let mut buf = vec![0u8; CHUNK];
                match stdout.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if out_tx.send(Ok(buf)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = out_tx.send(Err(e));
                        return;
                    }
                }
            }
        })?;
        let stderr = spawn_thread("sheaf-stream-err", move || {
            let mut stderr = stderr;
            let mut tail = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => return tail,
                    Ok(n) => {
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > 2 * STDERR_TAIL {
                            tail.drain(..tail.len() - STDERR_TAIL);
                        }
                    }
                }
            }
        })?;
        Ok(StreamProcess {
            command: command.to_string(),
            child,
            input: Some(in_tx),
            output: Some(out_rx),
            writer: Some(writer),
            reader: Some(reader),
            stderr: Some(stderr),
            pending: Vec::with_capacity(CHUNK + 1024),
            carry: Vec::new(),
            finished: false,
        })
    }

    fn buffer_line(&mut self, key: Option<&[u8]>, value: &[u8]) {
        if let Some(k) = key {
            self.pending.extend_from_slice(k);
            self.pending.push(b'\t');
        }
        self.pending.extend_from_slice(value);
        self.pending.push(b'\n');
    }

    fn write_line(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        out: &mut dyn Emitter,
    ) -> Result<(), TaskError> {
        self.buffer_line(key, value);
        if self.pending.len() >= CHUNK {
            self.send_pending(out)?;
        }
        Ok(())
    }

    /// Hands the pending input to the writer thread, emitting output whenever the input channel
    /// is full (the command may be waiting for its output to be read).
    fn send_pending(&mut self, out: &mut dyn Emitter) -> Result<(), TaskError> {
        let mut chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK + 1024));
        loop {
            let Some(tx) = &self.input else { return Ok(()) };
            match tx.try_send(chunk) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    chunk = back;
                    self.drain(out, Some(Duration::from_millis(20)))?;
                }
                Err(TrySendError::Disconnected(_)) => {
                    // The command stopped reading; see `write_input`.
                    self.input = None;
                    break;
                }
            }
        }
        self.drain(out, None).map(|_| ())
    }

    /// Emits complete output lines: whatever is ready, or waits up to `wait` for one chunk.
    /// Returns false once stdout is closed.
    fn drain(&mut self, out: &mut dyn Emitter, wait: Option<Duration>) -> Result<bool, TaskError> {
        // Taken out of `self` while lines are emitted (which needs `&mut self`); put back below.
        let Some(rx) = self.output.take() else {
            return Ok(false);
        };
        let open = self.drain_from(&rx, out, wait);
        if matches!(open, Ok(true)) {
            self.output = Some(rx);
        }
        open
    }

    fn drain_from(
        &mut self,
        rx: &Receiver<std::io::Result<Vec<u8>>>,
        out: &mut dyn Emitter,
        wait: Option<Duration>,
    ) -> Result<bool, TaskError> {
        let mut first = wait;
        loop {
            let next = match first.take() {
                Some(d) => match rx.recv_timeout(d) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => return Ok(true),
                    Err(RecvTimeoutError::Disconnected) => None,
                },
                None => match rx.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => return Ok(true),
                    Err(TryRecvError::Disconnected) => None,
                },
            };
            match next {
                Some(Ok(chunk)) => self.emit_lines(&chunk, out)?,
                Some(Err(e)) => {
                    return Err(TaskError::new(format!(
                        "reading output of streaming command `{}`: {e}",
                        self.command
                    )))
                }
                None => return Ok(false),
            }
        }
    }

    fn emit_lines(&mut self, chunk: &[u8], out: &mut dyn Emitter) -> Result<(), TaskError> {
        let mut rest = chunk;
        if !self.carry.is_empty() {
            match rest.iter().position(|b| *b == b'\n') {
                None => {
                    self.carry.extend_from_slice(rest);
                    return Ok(());
                }
                Some(nl) => {
                    let mut line = std::mem::take(&mut self.carry);
                    line.extend_from_slice(&rest[..nl]);
                    emit_line(&line, out)?;
                    rest = &rest[nl + 1..];
                }
            }
        }
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            emit_line(&rest[..nl], out)?;
            rest = &rest[nl + 1..];
        }
        self.carry.extend_from_slice(rest);
        Ok(())
    }

    /// Closes stdin, emits all remaining output, waits for the command and fails the task with
    /// its stderr tail if it exited non-zero.
    fn finish(&mut self, out: &mut dyn Emitter) -> Result<(), TaskError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if !self.pending.is_empty() {
            self.send_pending(out)?;
        }
        self.input = None;
        while self.drain(out, Some(Duration::from_millis(100)))? {}
        if !self.carry.is_empty() {
            let line = std::mem::take(&mut self.carry);
            emit_line(&line, out)?;
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let status = self.child.wait().map_err(|e| {
            TaskError::new(format!(
                "waiting for streaming command `{}`: {e}",
                self.command
            ))
        })?;
        let tail = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&tail);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let start = lines.len().saturating_sub(5);
        let shown = lines[start..].join(" | ");
        let how = match status.code() {
            Some(code) => format!("exit code {code}"),
            None => format!("{status}"),
        };
        Err(TaskError::new(format!(
            "streaming command `{}` failed with {how}; stderr: {}",
            self.command,
            if shown.is_empty() { "(empty)" } else { &shown }
        )))
    }
}

impl Drop for StreamProcess {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The task failed before `finish`: stop the command and its threads.
        self.input = None;
        self.output = None;
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals the process group we created for the
            // child; it has no memory-safety preconditions.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for h in [self.writer.take(), self.reader.take()]
            .into_iter()
            .flatten()
        {
            let _ = h.join();
        }
        if let Some(h) = self.stderr.take() {
            let _ = h.join();
        }
    }
}

/// Splits an output line at its first tab (no tab: the whole line is the key, value empty).
fn emit_line(line: &[u8], out: &mut dyn Emitter) -> Result<(), TaskError> {
    match line.iter().position(|b| *b == b'\t') {
        Some(tab) => out.emit(&line[..tab], &line[tab + 1..]),
        None => out.emit(line, b""),
    }
}

#[cfg(test)]
mod tests;
