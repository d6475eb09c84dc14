//! Spread policy: each job goes to the GPUs with the most free memory and, among equals, the lowest
//! utilisation, so load and heat spread over the machine.

placement::policy_plugin!(placement::Ranking::Spread);
