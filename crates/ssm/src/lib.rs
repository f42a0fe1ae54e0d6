//! SSM Parameter Store (in progress).
