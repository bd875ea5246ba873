pub mod kme;
pub mod mesh;
pub mod sim;
