#define LID_X (static_cast<int>(thread_position_in_threadgroup.x))
#define GID_X (static_cast<int>(threadgroup_position_in_grid.x))
