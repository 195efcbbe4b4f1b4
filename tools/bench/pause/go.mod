module plumbob.dev/tools/bench/pause

go 1.26
