//! Clients open the library by its soname, `libnvidia-ml.so.1`, as they do the real one.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnvidia-ml.so.1");
}
