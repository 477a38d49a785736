module github.com/vigil-cdp/vigil

go 1.26.5

ignore ./node_modules
