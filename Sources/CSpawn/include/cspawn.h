int lab_spawn_placeholder(void);
