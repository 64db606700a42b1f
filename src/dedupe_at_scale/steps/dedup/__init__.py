"""Global exact and near-duplicate removal."""
