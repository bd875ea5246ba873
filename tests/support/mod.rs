pub mod mesh;
pub mod sim;
