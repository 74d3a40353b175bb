//! Links the binary with an rpath to the libpython it was built against, so it runs without
//! LD_LIBRARY_PATH (pyenv's libpython lives outside the linker's search path).
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
