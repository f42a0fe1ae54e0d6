//! The store on a temporary directory: reads and pages, bounds, retention, deleted groups,
//! and recovery after a restart or a torn write.

use super::*;
use flotilla_logs::filter;
use flotilla_logs::retention::DAY_MS;

fn sref(group: &str, stream: &str) -> StreamRef {
    StreamRef {
        group: group.into(),
        generation: 1,
        stream: stream.into(),
    }
}

fn ev(ts: i64, msg: impl Into<String>) -> NewEvent {
    NewEvent {
        timestamp: ts,
        message: msg.into(),
    }
}

fn read(store: &LogStore, s: &StreamRef, dir: Direction, from: u64, limit: usize) -> ReadAnswer {
    store
        .read(&ReadQuery {
            stream: s.clone(),
            direction: dir,
            from,
            start_time: None,
            end_time: None,
            limit,
        })
        .unwrap()
}

fn messages(a: &ReadAnswer) -> Vec<String> {
    a.events.iter().map(|e| e.message.clone()).collect()
}

fn small() -> Limits {
    Limits {
        segment_bytes: 200,
        stream_bytes: 1000,
        total_bytes: 1500,
    }
}

#[test]
fn forward_and_backward_pages_cover_the_stream_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), small()).unwrap();
    let s = sref("g", "a");
    let evs: Vec<NewEvent> = (0..20).map(|i| ev(i, format!("line {i}"))).collect();
    store.append(&s, &evs, 100, None).unwrap();
    // Forward, 3 at a time, from the head.
    let mut from = 0;
    let mut seen = Vec::new();
    loop {
        let q = ReadQuery {
            stream: s.clone(),
            direction: Direction::Forward,
            from,
            start_time: None,
            end_time: None,
            limit: 3,
        };
        let a = store.read(&q).unwrap();
        seen.extend(messages(&a));
        let (next, _) = a.next_positions(&q);
        if next == from {
            break;
        }
        from = next;
    }
    assert_eq!(
        seen,
        (0..20).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    // Backward from the end.
    let last = read(&store, &s, Direction::Backward, END, 4);
    assert_eq!(
        messages(&last),
        ["line 16", "line 17", "line 18", "line 19"]
    );
    let q = ReadQuery {
        stream: s.clone(),
        direction: Direction::Backward,
        from: 16,
        start_time: None,
        end_time: None,
        limit: 4,
    };
    assert_eq!(
        messages(&store.read(&q).unwrap()),
        ["line 12", "line 13", "line 14", "line 15"]
    );
    // Time range.
    let q = ReadQuery {
        start_time: Some(5),
        end_time: Some(8),
        direction: Direction::Forward,
        from: 0,
        ..q
    };
    assert_eq!(
        messages(&store.read(&q).unwrap()),
        ["line 5", "line 6", "line 7"]
    );
}

#[test]
fn a_stream_and_the_store_stay_within_their_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), small()).unwrap();
    let (a, b) = (sref("g", "a"), sref("g", "b"));
    for i in 0..200 {
        store
            .append(&a, &[ev(i, format!("a{i:04}"))], i, None)
            .unwrap();
    }
    let bytes_a = store.stats(std::slice::from_ref(&a))[0]
        .unwrap()
        .stored_bytes;
    assert!(bytes_a <= small().stream_bytes, "{bytes_a}");
    // The newest events are kept, the oldest went first.
    let tail = read(&store, &a, Direction::Backward, END, 1);
    assert_eq!(messages(&tail), ["a0199"]);
    let head = read(&store, &a, Direction::Forward, 0, 1);
    assert!(head.events[0].seq > 0);
    for i in 0..200 {
        store
            .append(&b, &[ev(i, format!("b{i:04}"))], 1000 + i, None)
            .unwrap();
    }
    assert!(
        store.total_bytes() <= small().total_bytes,
        "{}",
        store.total_bytes()
    );
    // Positions keep growing: nothing is renumbered when old segments go.
    assert_eq!(
        read(&store, &b, Direction::Backward, END, 1).events[0].seq,
        199
    );
}

#[test]
fn retention_drops_expired_segments_and_deleted_groups_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), small()).unwrap();
    let s = sref("g", "a");
    let now = 100 * DAY_MS;
    for i in 0..30 {
        store
            .append(
                &s,
                &[ev(now - 10 * DAY_MS + i, format!("old {i}"))],
                now,
                None,
            )
            .unwrap();
    }
    for i in 0..5 {
        store
            .append(&s, &[ev(now + i, format!("new {i}"))], now, None)
            .unwrap();
    }
    let dropped = store.sweep(now, &|_| Some(7)).unwrap();
    assert!(dropped > 0);
    let all = read(&store, &s, Direction::Forward, 0, 100);
    assert!(messages(&all).contains(&"new 4".to_string()));
    assert!(all.events.len() < 35);
    // Nothing expires without a retention.
    assert_eq!(store.sweep(now + 1000 * DAY_MS, &|_| None).unwrap(), 0);
    // Everything expired: the stream is empty, positions go on.
    store.sweep(now + 30 * DAY_MS, &|_| Some(1)).unwrap();
    let empty = read(&store, &s, Direction::Forward, 0, 100);
    assert!(empty.events.is_empty());
    assert_eq!(empty.end, 35);
    let other = StreamRef {
        generation: 9,
        ..sref("h", "x")
    };
    store.append(&other, &[ev(now, "x")], now, None).unwrap();
    // Group g (generation 1) is gone at revision 5; h's generation 9 is newer than the list.
    let gone = store.retain_groups(&[], 5).unwrap();
    assert_eq!(gone, vec![s.clone()]);
    assert_eq!(store.streams(), vec![other]);
}

#[test]
fn a_restart_recovers_positions_cursors_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let s = sref("/ecs/web", "ecs/web/abc");
    {
        let store = LogStore::open(dir.path(), small()).unwrap();
        for i in 0..40 {
            let c = Cursor { ns: 1000 + i, n: 0 };
            store
                .append(&s, &[ev(i, format!("l{i}"))], i, Some(c))
                .unwrap();
        }
    }
    // Tear the last record of the open segment.
    let stream_dir = fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut segs: Vec<PathBuf> = fs::read_dir(&stream_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let last = segs.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    let f = OpenOptions::new().write(true).open(last).unwrap();
    f.set_len(len - 3).unwrap();
    let store = LogStore::open(dir.path(), small()).unwrap();
    // The torn event (l39) is gone; the cursor is the one of the last good event.
    assert_eq!(store.last_cursor(&s), Some(Cursor { ns: 1038, n: 0 }));
    let tail = read(&store, &s, Direction::Backward, END, 2);
    assert_eq!(messages(&tail), ["l37", "l38"]);
    assert_eq!(tail.end, 39);
    // Appends continue at the right position.
    store.append(&s, &[ev(50, "after")], 50, None).unwrap();
    let tail = read(&store, &s, Direction::Backward, END, 2);
    assert_eq!(messages(&tail), ["l38", "after"]);
    assert_eq!(tail.events[1].seq, 39);
}

#[test]
fn filter_scans_resume_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Limits::default()).unwrap();
    let (a, b) = (sref("g", "a"), sref("g", "b"));
    for i in 0..10 {
        let m = if i % 2 == 0 { "ERROR x" } else { "INFO y" };
        store
            .append(&a, &[ev(i, format!("{m} a{i}"))], i, None)
            .unwrap();
        store
            .append(&b, &[ev(i, format!("{m} b{i}"))], i, None)
            .unwrap();
    }
    let p = filter::parse("ERROR").unwrap();
    let mut positions = vec![0u64, 0];
    let mut got = Vec::new();
    for _ in 0..20 {
        let q = FilterQuery {
            streams: vec![(a.clone(), positions[0]), (b.clone(), positions[1])],
            start_time: None,
            end_time: None,
            pattern: "ERROR".into(),
            limit: 3,
            scan_bytes: 60,
        };
        let ans = store.filter(&q, &p).unwrap();
        let page = flotilla_logs::query::merge_filter(ans.streams, 3);
        got.extend(page.events.iter().map(|m| m.event.message.clone()));
        positions = page.positions.iter().map(|(_, p)| *p).collect();
        if page.done {
            break;
        }
    }
    got.sort();
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|m| m.starts_with("ERROR")));
}

#[test]
fn reads_seek_by_marks_to_any_position_before_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        segment_bytes: 16 << 10,
        stream_bytes: 1 << 30,
        total_bytes: 1 << 30,
    };
    let s = sref("g", "marks");
    let n = 1000u64;
    {
        let store = LogStore::open(dir.path(), limits).unwrap();
        for chunk in (0..n).collect::<Vec<_>>().chunks(37) {
            let evs: Vec<NewEvent> = chunk
                .iter()
                .map(|i| ev(*i as i64, format!("event {i:05}")))
                .collect();
            store.append(&s, &evs, 0, None).unwrap();
        }
        check_reads(&store, &s, n);
    }
    let store = LogStore::open(dir.path(), limits).unwrap();
    check_reads(&store, &s, n);
}

fn check_reads(store: &LogStore, s: &StreamRef, n: u64) {
    let seqs = |a: &ReadAnswer| a.events.iter().map(|e| e.seq).collect::<Vec<_>>();
    for from in [0, 1, 63, 64, 65, 300, 511, 512, 777, 998, 999, 1000] {
        let fwd = read(store, s, Direction::Forward, from, 7);
        let want: Vec<u64> = (from..(from + 7).min(n)).collect();
        assert_eq!(seqs(&fwd), want, "forward from {from}");
        let back = read(store, s, Direction::Backward, from, 7);
        let want: Vec<u64> = (from.saturating_sub(7)..from).collect();
        assert_eq!(seqs(&back), want, "backward from {from}");
        for e in &fwd.events {
            assert_eq!(e.message, format!("event {:05}", e.seq));
        }
    }
    let last = read(store, s, Direction::Backward, END, 3);
    assert_eq!(seqs(&last), vec![n - 3, n - 2, n - 1]);
}
