#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| edgemq_fuzz::config(data));
