int lab_spawn_placeholder(void) { return 0; }
