//! Links the mock DCGM so that `dlclose` never unmaps it, as the mock NVML is linked: a call
//! that sleeps out a scenario's `delays_ms` on one thread while another thread drops the
//! library (a test that closes it) would otherwise return into unmapped code.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
