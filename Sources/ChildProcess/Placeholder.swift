enum ChildProcessPlaceholder {}
