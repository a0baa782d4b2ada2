//! The config reader: any text gives a plan or a list of errors with positions inside the
//! text, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = switchyard::config::load_str(text, "fuzz.toml") {
        let lines = text.lines().count().max(1);
        for e in &errors.0 {
            // A position names a line of the text (TOML may point one past the last line).
            assert!(e.line <= lines + 1, "{e} beyond {lines} lines");
            assert!(!e.message.is_empty());
        }
        let _ = errors.to_string();
    }
});
