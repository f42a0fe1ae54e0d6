//! The on-host store of log events: what an agent keeps of its containers' output (the
//! `awslogs` driver) and what a server keeps of the streams API callers write (PutLogEvents).
//! Events never go to the control-plane store; they stay where they were produced, bounded.
//!
//! Layout: one directory per stream under the root, named by a hash of the stream's identity
//! ([`StreamRef`]: group, group generation, stream), holding `stream.json` (the identity and
//! the next position) and segment files `<first position, 20 digits>.seg` ([`segment`]). Only
//! the newest segment of a stream is written; it is sealed at [`Limits::segment_bytes`] and a
//! sealed segment gets an index file (`.idx`: positions, times, size) so opening the store
//! scans only the open segments.
//!
//! Bounds ([`Limits`]): a stream keeps at most `stream_bytes` (its oldest sealed segments go
//! first), the store at most `total_bytes` (the oldest sealed segment of any stream goes
//! first), and [`LogStore::sweep`] drops segments whose every event is older than the group's
//! retention. [`LogStore::retain_groups`] drops the streams of deleted groups.
//!
//! Recovery: a crash may leave a torn last record; opening the store truncates it. Each event
//! may carry the [`Cursor`] of the producer's output it ends at, so a capture resumes exactly
//! after the last stored event ([`LogStore::last_cursor`]).
//!
//! Concurrency: one mutex over the index; file reads and writes happen under it. Callers on
//! an async runtime call it from blocking threads.

#![warn(missing_docs)]

pub mod segment;

use flotilla_logs::filter::Pattern;
use flotilla_logs::query::{
    Direction, Event, FilterAnswer, FilterQuery, LogRequest, LogResponse, NewEvent, ReadAnswer,
    ReadQuery, StreamRef, StreamScan, StreamStats, END, MAX_PAGE_BYTES,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A position in a producer's output: Docker's timestamp of a line (ns since the epoch) and
/// how many lines before it had the same timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    /// The line's timestamp, nanoseconds since the epoch.
    pub ns: i64,
    /// Its index among the lines with that timestamp.
    pub n: u32,
}

/// The store's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A segment is sealed at this size.
    pub segment_bytes: u64,
    /// A stream keeps at most this much (its oldest segments go first).
    pub stream_bytes: u64,
    /// The store keeps at most this much (the oldest segments of any stream go first).
    pub total_bytes: u64,
}

impl Default for Limits {
    /// 4 MiB segments, 256 MiB per stream, 2 GiB in all.
    fn default() -> Self {
        Self {
            segment_bytes: 4 << 20,
            stream_bytes: 256 << 20,
            total_bytes: 2 << 30,
        }
    }
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("log store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What one segment holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SegmentInfo {
    first_seq: u64,
    /// Records in it.
    count: u64,
    bytes: u64,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
    last_ingestion: Option<i64>,
    /// Where every [`MARK_EVERY`]-th record starts: (position, byte offset), so a read seeks
    /// near its position instead of scanning the segment.
    #[serde(default)]
    marks: Vec<(u64, u64)>,
}

/// How often a record's offset is remembered.
const MARK_EVERY: u64 = 64;

impl SegmentInfo {
    fn new(first_seq: u64) -> Self {
        Self {
            first_seq,
            count: 0,
            bytes: 0,
            min_ts: None,
            max_ts: None,
            last_ingestion: None,
            marks: Vec::new(),
        }
    }

    /// Remembers where the record of position `seq` starts, when it is a marked one.
    fn mark(&mut self, seq: u64, offset: u64) {
        if (seq - self.first_seq).is_multiple_of(MARK_EVERY) {
            self.marks.push((seq, offset));
        }
    }

    /// The offset to start reading at to find position `seq` (0 without marks).
    fn offset_for(&self, seq: u64) -> u64 {
        match self.marks.partition_point(|(s, _)| *s <= seq) {
            0 => 0,
            i => self.marks[i - 1].1,
        }
    }

    /// The segment's chunks between marks, newest first: (first position, start, end offset;
    /// `None` for the end of the file).
    fn chunks_back(&self) -> Vec<(u64, u64, Option<u64>)> {
        if self.marks.is_empty() {
            return vec![(self.first_seq, 0, None)];
        }
        let mut out = Vec::with_capacity(self.marks.len());
        let mut end = None;
        for (seq, off) in self.marks.iter().rev() {
            out.push((*seq, *off, end));
            end = Some(*off);
        }
        out
    }

    fn end_seq(&self) -> u64 {
        self.first_seq + self.count
    }

    fn add(&mut self, e: &Event, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
        self.min_ts = Some(self.min_ts.map_or(e.timestamp, |m| m.min(e.timestamp)));
        self.max_ts = Some(self.max_ts.map_or(e.timestamp, |m| m.max(e.timestamp)));
        self.last_ingestion = Some(
            self.last_ingestion
                .map_or(e.ingestion_time, |m| m.max(e.ingestion_time)),
        );
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StreamFile {
    stream: StreamRef,
    /// The position the next event gets when the stream has no segment.
    next_seq: u64,
}

#[derive(Debug)]
struct StreamState {
    dir: PathBuf,
    /// Oldest first; the last one is open for appends.
    segments: Vec<SegmentInfo>,
    next_seq: u64,
    last_cursor: Option<Cursor>,
}

impl StreamState {
    fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn first_seq(&self) -> u64 {
        self.segments.first().map_or(self.next_seq, |s| s.first_seq)
    }

    fn seg_path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(format!("{first_seq:020}.seg"))
    }

    fn idx_path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(format!("{first_seq:020}.idx"))
    }
}

/// A stream's index as a read sees it.
#[derive(Debug)]
struct Snapshot {
    dir: PathBuf,
    segments: Vec<SegmentInfo>,
    first_seq: u64,
    next_seq: u64,
}

impl Snapshot {
    /// The bytes of `seg` from `from` to `to` (the end of the file when `None`); a segment
    /// dropped meanwhile (bounds, retention) reads as empty.
    fn read(&self, seg: &SegmentInfo, from: u64, to: Option<u64>) -> Result<Vec<u8>, StoreError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.dir.join(format!("{:020}.seg", seg.first_seq));
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        f.seek(SeekFrom::Start(from)).map_err(io(&path))?;
        let mut out = Vec::new();
        match to {
            Some(to) => {
                f.take(to.saturating_sub(from))
                    .read_to_end(&mut out)
                    .map_err(io(&path))?;
            }
            None => {
                f.read_to_end(&mut out).map_err(io(&path))?;
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Default)]
struct Inner {
    streams: HashMap<StreamRef, StreamState>,
}

/// The store.
#[derive(Debug)]
pub struct LogStore {
    root: PathBuf,
    limits: Limits,
    inner: Mutex<Inner>,
}

fn dir_name(s: &StreamRef) -> String {
    let mut h = sha2::Sha256::new();
    h.update(s.group.as_bytes());
    h.update([0]);
    h.update(s.generation.to_le_bytes());
    h.update([0]);
    h.update(s.stream.as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn read_file(path: &Path) -> Result<Vec<u8>, StoreError> {
    fs::read(path).map_err(io(path))
}

impl LogStore {
    /// Opens (creating) the store at `root`, recovering every stream: torn tails are cut.
    pub fn open(root: impl Into<PathBuf>, limits: Limits) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io(&root))?;
        let mut inner = Inner::default();
        for entry in fs::read_dir(&root).map_err(io(&root))? {
            let entry = entry.map_err(io(&root))?;
            let dir = entry.path();
            let meta = dir.join("stream.json");
            let Ok(bytes) = fs::read(&meta) else {
                continue;
            };
            let Ok(sf) = serde_json::from_slice::<StreamFile>(&bytes) else {
                tracing::warn!(path = %meta.display(), "unreadable stream file; skipping the stream");
                continue;
            };
            let state = Self::recover(dir, sf.next_seq)?;
            inner.streams.insert(sf.stream, state);
        }
        Ok(Self {
            root,
            limits,
            inner: Mutex::new(inner),
        })
    }

    /// Rebuilds one stream's index from its files.
    fn recover(dir: PathBuf, next_seq: u64) -> Result<StreamState, StoreError> {
        let mut firsts: Vec<u64> = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        firsts.sort_unstable();
        let mut state = StreamState {
            dir,
            segments: Vec::new(),
            next_seq,
            last_cursor: None,
        };
        let n = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            let last = i + 1 == n;
            let idx = state.idx_path(first);
            if !last {
                if let Some(info) = fs::read(&idx)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<SegmentInfo>(&b).ok())
                {
                    state.segments.push(info);
                    continue;
                }
            }
            let path = state.seg_path(first);
            let bytes = read_file(&path)?;
            let mut info = SegmentInfo::new(first);
            let mut cursor = None;
            let mut start = 0u64;
            let good = segment::scan(&bytes, |r, end| {
                if r.event.seq == info.end_seq() {
                    info.mark(r.event.seq, start);
                    start = end as u64;
                    // Sizes are the file's length, set below.
                    info.add(&r.event, 0);
                    if r.cursor.is_some() {
                        cursor = r.cursor;
                    }
                    true
                } else {
                    false
                }
            });
            info.bytes = good as u64;
            if good < bytes.len() {
                tracing::warn!(path = %path.display(), kept = good, len = bytes.len(), "cutting a torn log segment");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                f.set_len(good as u64).map_err(io(&path))?;
            }
            if cursor.is_some() {
                state.last_cursor = cursor;
            }
            state.segments.push(info);
        }
        if let Some(last) = state.segments.last() {
            state.next_seq = state.next_seq.max(last.end_seq());
        }
        Ok(state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The streams the store holds.
    pub fn streams(&self) -> Vec<StreamRef> {
        let mut v: Vec<StreamRef> = self.lock().streams.keys().cloned().collect();
        v.sort();
        v
    }

    /// Bytes stored in all.
    pub fn total_bytes(&self) -> u64 {
        self.lock().streams.values().map(StreamState::bytes).sum()
    }

    /// Where the producer's output of the stream's last stored event ends.
    pub fn last_cursor(&self, stream: &StreamRef) -> Option<Cursor> {
        self.lock().streams.get(stream).and_then(|s| s.last_cursor)
    }

    fn stream_mut<'a>(
        &self,
        inner: &'a mut Inner,
        stream: &StreamRef,
    ) -> Result<&'a mut StreamState, StoreError> {
        if !inner.streams.contains_key(stream) {
            let dir = self.root.join(dir_name(stream));
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            let state = StreamState {
                dir,
                segments: Vec::new(),
                next_seq: 0,
                last_cursor: None,
            };
            write_stream_file(&state, stream)?;
            inner.streams.insert(stream.clone(), state);
        }
        inner.streams.get_mut(stream).ok_or_else(|| StoreError::Io {
            path: self.root.clone(),
            source: std::io::Error::other("stream vanished"),
        })
    }

    /// Creates the stream (nothing when it exists).
    pub fn create(&self, stream: &StreamRef) -> Result<(), StoreError> {
        let mut inner = self.lock();
        self.stream_mut(&mut inner, stream).map(|_| ())
    }

    /// Appends events stored at `ingestion_ms`; `cursor` is where the producer's output of
    /// the last of them ends. Returns the position of the first. Then enforces the bounds.
    pub fn append(
        &self,
        stream: &StreamRef,
        events: &[NewEvent],
        ingestion_ms: i64,
        cursor: Option<Cursor>,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let limits = self.limits;
        let st = self.stream_mut(&mut inner, stream)?;
        let first = st.next_seq;
        let mut buf = Vec::new();
        let mut pending: Vec<(Event, u64)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let event = Event {
                seq: st.next_seq + i as u64,
                timestamp: e.timestamp,
                ingestion_time: ingestion_ms,
                message: e.message.clone(),
            };
            let before = buf.len();
            let c = if i + 1 == events.len() { cursor } else { None };
            encode_into(&event, c, &mut buf);
            pending.push((event, (buf.len() - before) as u64));
        }
        // Write in runs that fit the open segment, sealing full ones.
        let mut at = 0usize;
        let mut idx = 0usize;
        while idx < pending.len() {
            let needs_new = match st.segments.last() {
                None => true,
                Some(s) => s.bytes >= limits.segment_bytes,
            };
            if needs_new {
                if let Some(last) = st.segments.last() {
                    seal(st, last.clone())?;
                }
                st.segments.push(SegmentInfo::new(pending[idx].0.seq));
            }
            let Some(open) = st.segments.last().cloned() else {
                break;
            };
            let mut run_end = idx;
            let mut run_bytes = 0u64;
            while run_end < pending.len()
                && (run_end == idx
                    || open.bytes + run_bytes + pending[run_end].1 <= limits.segment_bytes)
            {
                run_bytes += pending[run_end].1;
                run_end += 1;
            }
            let path = st.seg_path(open.first_seq);
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            f.write_all(&buf[at..at + run_bytes as usize])
                .map_err(io(&path))?;
            at += run_bytes as usize;
            if let Some(seg) = st.segments.last_mut() {
                for (e, b) in &pending[idx..run_end] {
                    let offset = seg.bytes;
                    seg.mark(e.seq, offset);
                    seg.add(e, *b);
                }
            }
            idx = run_end;
        }
        st.next_seq += events.len() as u64;
        if cursor.is_some() {
            st.last_cursor = cursor;
        }
        self.enforce(&mut inner)?;
        Ok(first)
    }

    /// Drops the oldest sealed segments of streams over `stream_bytes`, then of the store
    /// while it is over `total_bytes`.
    fn enforce(&self, inner: &mut Inner) -> Result<(), StoreError> {
        for st in inner.streams.values_mut() {
            while st.bytes() > self.limits.stream_bytes && st.segments.len() > 1 {
                drop_oldest(st)?;
            }
        }
        loop {
            let total: u64 = inner.streams.values().map(StreamState::bytes).sum();
            if total <= self.limits.total_bytes {
                return Ok(());
            }
            let oldest = inner
                .streams
                .values_mut()
                .filter(|s| s.segments.len() > 1)
                .min_by_key(|s| s.segments[0].last_ingestion.unwrap_or(i64::MIN));
            match oldest {
                Some(st) => drop_oldest(st)?,
                None => return Ok(()),
            }
        }
    }

    /// Drops what retention expired at `now_ms`: every segment whose newest event is older
    /// than its group's retention (`retention(stream)` in days; `None` keeps everything).
    /// Returns how many segments were dropped.
    pub fn sweep(
        &self,
        now_ms: i64,
        retention: &dyn Fn(&StreamRef) -> Option<u32>,
    ) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let mut dropped = 0;
        for (s, st) in inner.streams.iter_mut() {
            let Some(oldest) = flotilla_logs::retention::oldest_kept(now_ms, retention(s)) else {
                continue;
            };
            while st
                .segments
                .first()
                .is_some_and(|seg| seg.max_ts.is_some_and(|m| m < oldest))
            {
                if st.segments.len() == 1 {
                    // The open segment: everything in it expired, so the stream restarts empty
                    // at its next position.
                    let only = st.segments.remove(0);
                    st.next_seq = st.next_seq.max(only.end_seq());
                    remove_segment_files(st, only.first_seq)?;
                    let stream = s.clone();
                    write_stream_file(st, &stream)?;
                } else {
                    drop_oldest(st)?;
                }
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Keeps only the streams of `groups` (name and generation, as the control plane lists
    /// them at revision `as_of`): a stream of a group generation at or before `as_of` that is
    /// not listed belongs to a deleted group and is removed. Streams of newer generations are
    /// kept (their group was created after the list). Returns the streams removed.
    pub fn retain_groups(
        &self,
        groups: &[(String, u64)],
        as_of: u64,
    ) -> Result<Vec<StreamRef>, StoreError> {
        let mut inner = self.lock();
        let gone: Vec<StreamRef> = inner
            .streams
            .keys()
            .filter(|s| {
                s.generation <= as_of
                    && !groups
                        .iter()
                        .any(|(g, n)| *g == s.group && *n == s.generation)
            })
            .cloned()
            .collect();
        for s in &gone {
            if let Some(st) = inner.streams.remove(s) {
                fs::remove_dir_all(&st.dir).map_err(io(&st.dir))?;
            }
        }
        Ok(gone)
    }

    /// Removes every stream of a group generation.
    pub fn delete_group(&self, group: &str, generation: u64) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let gone: Vec<StreamRef> = inner
            .streams
            .keys()
            .filter(|s| s.group == group && s.generation == generation)
            .cloned()
            .collect();
        for s in gone {
            if let Some(st) = inner.streams.remove(&s) {
                fs::remove_dir_all(&st.dir).map_err(io(&st.dir))?;
            }
        }
        Ok(())
    }

    /// What reading a stream needs, taken under the lock; the files are read after it is
    /// released, so reads never hold up appends (a record being appended is not complete yet
    /// and fails its checksum: the read stops before it).
    fn snapshot(&self, stream: &StreamRef) -> Option<Snapshot> {
        let inner = self.lock();
        let st = inner.streams.get(stream)?;
        Some(Snapshot {
            dir: st.dir.clone(),
            segments: st.segments.clone(),
            first_seq: st.first_seq(),
            next_seq: st.next_seq,
        })
    }

    /// GetLogEvents on one stream (a stream the store does not hold has no events).
    pub fn read(&self, q: &ReadQuery) -> Result<ReadAnswer, StoreError> {
        let Some(st) = self.snapshot(&q.stream) else {
            return Ok(ReadAnswer {
                events: vec![],
                boundary: if q.from == END { 0 } else { q.from },
                end: 0,
            });
        };
        let end = st.next_seq;
        let limit = q.limit.max(1);
        match q.direction {
            Direction::Forward => {
                let from = q.from.max(st.first_seq);
                let mut events = Vec::new();
                let mut bytes = 0usize;
                let mut boundary = from;
                let mut full = false;
                for seg in st.segments.iter().filter(|s| s.end_seq() > from) {
                    let data = st.read(seg, seg.offset_for(from), None)?;
                    segment::scan(&data, |r, _| {
                        let e = r.event;
                        if e.seq < from {
                            return true;
                        }
                        if e.seq >= end {
                            return false;
                        }
                        if q.in_range(e.timestamp) {
                            if events.len() >= limit || bytes + e.size() > MAX_PAGE_BYTES {
                                full = true;
                                return false;
                            }
                            bytes += e.size();
                            events.push(e.clone());
                        }
                        boundary = e.seq + 1;
                        true
                    });
                    if full {
                        break;
                    }
                }
                Ok(ReadAnswer {
                    events,
                    boundary,
                    end,
                })
            }
            Direction::Backward => {
                let before = q.from.min(end);
                let mut events: Vec<Event> = Vec::new();
                let mut bytes = 0usize;
                let mut boundary = st.first_seq.min(before);
                let mut full = false;
                'segments: for seg in st.segments.iter().rev().filter(|s| s.first_seq < before) {
                    for (first, from, to) in seg.chunks_back() {
                        if first >= before {
                            continue;
                        }
                        let data = st.read(seg, from, to)?;
                        let mut in_chunk = Vec::new();
                        segment::scan(&data, |r, _| {
                            if r.event.seq < before {
                                in_chunk.push(r.event);
                                true
                            } else {
                                false
                            }
                        });
                        for e in in_chunk.into_iter().rev() {
                            if q.in_range(e.timestamp) {
                                if events.len() >= limit || bytes + e.size() > MAX_PAGE_BYTES {
                                    full = true;
                                    break 'segments;
                                }
                                bytes += e.size();
                                boundary = e.seq;
                                events.push(e);
                            }
                        }
                    }
                }
                events.reverse();
                if !full {
                    // Everything before `before` was examined.
                    boundary = st.first_seq.min(before);
                }
                Ok(ReadAnswer {
                    events,
                    boundary,
                    end,
                })
            }
        }
    }

    /// FilterLogEvents on some streams.
    pub fn filter(&self, q: &FilterQuery, pattern: &Pattern) -> Result<FilterAnswer, StoreError> {
        let mut out = Vec::with_capacity(q.streams.len());
        for (s, from) in &q.streams {
            let Some(st) = self.snapshot(s) else {
                out.push(StreamScan {
                    stream: s.stream.clone(),
                    events: vec![],
                    scanned_to: *from,
                    exhausted: true,
                });
                continue;
            };
            let from = (*from).max(st.first_seq);
            let end = st.next_seq;
            let mut events = Vec::new();
            let mut scanned_to = from;
            let mut examined = 0usize;
            let mut stopped = false;
            for seg in st.segments.iter().filter(|g| g.end_seq() > from) {
                if let (Some(start), Some(max)) = (q.start_time, seg.max_ts) {
                    if max < start {
                        scanned_to = scanned_to.max(seg.end_seq());
                        continue;
                    }
                }
                if let (Some(end), Some(min)) = (q.end_time, seg.min_ts) {
                    if min >= end {
                        scanned_to = scanned_to.max(seg.end_seq());
                        continue;
                    }
                }
                let data = st.read(seg, seg.offset_for(from), None)?;
                segment::scan(&data, |r, _| {
                    let e = r.event;
                    if e.seq < from {
                        return true;
                    }
                    if e.seq >= end {
                        return false;
                    }
                    if events.len() >= q.limit.max(1) || examined >= q.scan_bytes.max(1) {
                        stopped = true;
                        return false;
                    }
                    examined += e.size();
                    scanned_to = e.seq + 1;
                    if flotilla_logs::query::in_range(q.start_time, q.end_time, e.timestamp)
                        && pattern.matches(&e.message)
                    {
                        events.push(e);
                    }
                    true
                });
                if stopped {
                    break;
                }
            }
            out.push(StreamScan {
                stream: s.stream.clone(),
                events,
                exhausted: !stopped,
                scanned_to: if stopped {
                    scanned_to
                } else {
                    scanned_to.max(end)
                },
            });
        }
        Ok(FilterAnswer { streams: out })
    }

    /// Runs an owner's request ([`LogRequest`]) on this store; `now_ms` is the ingestion time
    /// of appended events. The error says what failed.
    pub fn serve(&self, request: LogRequest, now_ms: i64) -> Result<LogResponse, String> {
        match request {
            LogRequest::Read(q) => self
                .read(&q)
                .map(LogResponse::Read)
                .map_err(|e| e.to_string()),
            LogRequest::Filter(q) => {
                let pattern = flotilla_logs::filter::parse(&q.pattern).map_err(|e| e.message)?;
                self.filter(&q, &pattern)
                    .map(LogResponse::Filter)
                    .map_err(|e| e.to_string())
            }
            LogRequest::Stats { streams } => Ok(LogResponse::Stats {
                stats: self.stats(&streams),
            }),
            LogRequest::Append { stream, events } => self
                .append(&stream, &events, now_ms, None)
                .map(|_| LogResponse::Appended)
                .map_err(|e| e.to_string()),
        }
    }

    /// DescribeLogStreams' event times and sizes.
    pub fn stats(&self, streams: &[StreamRef]) -> Vec<Option<StreamStats>> {
        let inner = self.lock();
        streams
            .iter()
            .map(|s| {
                let st = inner.streams.get(s)?;
                Some(StreamStats {
                    first_event_timestamp: st.segments.iter().filter_map(|g| g.min_ts).min(),
                    last_event_timestamp: st.segments.iter().filter_map(|g| g.max_ts).max(),
                    last_ingestion_time: st.segments.iter().filter_map(|g| g.last_ingestion).max(),
                    stored_bytes: st.bytes(),
                })
            })
            .collect()
    }
}

fn encode_into(e: &Event, cursor: Option<Cursor>, buf: &mut Vec<u8>) {
    segment::encode(e, cursor, buf);
}

fn write_stream_file(st: &StreamState, stream: &StreamRef) -> Result<(), StoreError> {
    let path = st.dir.join("stream.json");
    let tmp = st.dir.join("stream.json.tmp");
    let sf = StreamFile {
        stream: stream.clone(),
        next_seq: st.next_seq,
    };
    let bytes = serde_json::to_vec(&sf).unwrap_or_default();
    fs::write(&tmp, bytes).map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))
}

/// Seals the open segment: syncs it and writes its index.
fn seal(st: &StreamState, info: SegmentInfo) -> Result<(), StoreError> {
    let path = st.seg_path(info.first_seq);
    if let Ok(f) = File::open(&path) {
        f.sync_all().map_err(io(&path))?;
    }
    let idx = st.idx_path(info.first_seq);
    fs::write(&idx, serde_json::to_vec(&info).unwrap_or_default()).map_err(io(&idx))
}

fn remove_segment_files(st: &StreamState, first_seq: u64) -> Result<(), StoreError> {
    for p in [st.seg_path(first_seq), st.idx_path(first_seq)] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p)(e)),
        }
    }
    Ok(())
}

fn drop_oldest(st: &mut StreamState) -> Result<(), StoreError> {
    if st.segments.is_empty() {
        return Ok(());
    }
    let old = st.segments.remove(0);
    remove_segment_files(st, old.first_seq)
}

#[cfg(test)]
mod tests;
