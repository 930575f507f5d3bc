//! Links the mock NVML so that `dlclose` never unmaps it: its scenario-watch thread
//! (`src/watch.rs`) lives as long as the process, blocked in `read(2)` inside the library, and a
//! test that drops its `Nvml` (nvml-wrapper closes the library) would otherwise pull that
//! thread's code out from under it (a SIGSEGV in whichever test runs next).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
