//! gantry's default policy: each job goes to the GPUs whose free memory fits it most tightly, so
//! the roomiest GPUs stay whole for the jobs that need them.

placement::policy_plugin!(placement::Ranking::BestFit);
