//! Compiles `proto/quern.proto` with protox (pure Rust), so no system `protoc` is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["proto/quern.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".quern.v1.FetchChunk.data")
        // Encoded once per page, sent to every worker that reads it.
        .bytes(".quern.v1.MapOutputLocationsResponse.events")
        // Counters listed by name, the same way every time.
        .btree_map(".quern.v1.Counters.user")
        .compile_fds(descriptors)?;
    Ok(())
}
