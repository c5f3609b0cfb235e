int other_file_open(const char *p);
int other_file_tail(const char *p);
