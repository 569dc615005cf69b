//! Example operator for sync: the `Database` kind, its local controller and the agent.
