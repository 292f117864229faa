//! Reports: any bytes must parse or be refused cleanly, and whatever parses must render and
//! be judged without a panic.
#![no_main]

use accelprobe::render;
use accelprobe::report::Report;
use accelprobe::verify::{catalog::Catalog, verify, VerifyInputs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(report) = Report::parse_json(text) {
            let _ = render::table::render(&report);
            let _ = render::bench::table(&report, &[]);
            if let Ok(v) = verify(&report, &VerifyInputs::default(), Catalog::builtin()) {
                let _ = render::verdict::table(&v);
            }
        }
    }
});
