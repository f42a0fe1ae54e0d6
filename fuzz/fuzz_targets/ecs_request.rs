//! The ECS request body parser and validator: any bytes, as the body of any operation, must be
//! refused with an `EcsError` or accepted, never panic; and a body the model's validation
//! accepts must always read as the operation's generated input type (`validate`'s promise that
//! the typed deserialization cannot then fail).
#![no_main]

use flotilla_model::validate::check_input;
use flotilla_model::Operation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let op = Operation::ALL[pick as usize % Operation::ALL.len()];
    let Ok(input) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    if check_input(op.name(), &input).is_ok() {
        if let Err(e) = op.decode_input(input.clone()) {
            panic!(
                "{} accepted by validation but not read: {e}: {input}",
                op.name()
            );
        }
    }
});
