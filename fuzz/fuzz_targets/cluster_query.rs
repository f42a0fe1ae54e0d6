//! The cluster query language: any text must parse or be refused with a `QueryError` whose
//! position is inside the text, never panic; a parsed query evaluates without failing.
#![no_main]

use flotilla_scheduler::query::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(q) => {
            let _ = q.is_dynamic();
            let _ = q.matches(&fuzz_instance());
        }
        Err(e) => {
            assert!(e.position <= text.len(), "{e:?} past the end of {text:?}");
            let _ = e.render(text);
        }
    }
});

fn fuzz_instance() -> flotilla_scheduler::ContainerInstance {
    flotilla_scheduler::ContainerInstance::new("i-1", 1024, 2048)
        .with_attribute("ecs.instance-type", "t2.micro")
        .with_attribute("ecs.availability-zone", "us-east-1a")
        .with_attribute("ecs.os-type", "linux")
}
