//! A transform worker on its own (the `warren` binary serves the same as `warren
//! transform-worker`): reads requests on stdin, answers on stdout.

fn main() -> std::io::Result<()> {
    warren_transform::worker::serve()
}
